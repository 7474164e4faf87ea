#!/usr/bin/python3
"""Check that a JSON Schema and pmoves' C validator agree (run by tests/test-profile.c for the
profile schema and by tests/test-fb-config.c for the first-boot config's).

schema-check.py SCHEMA CASES CORPUS
  CASES:  lines "refuse|accept|notjson PATH": what the schema must say of the file PATH
  CORPUS: lines "FORMAT<TAB>JSON-VALUE<TAB>accept|refuse": what the C validator said of the
          value (a JSON string or integer) for the format "$defs/FORMAT"
Prints one line per check: "ok ..." or "not ok ...".
"""
import json
import sys

from jsonschema import Draft202012Validator


def main():
    schema_path, cases_path, corpus_path = sys.argv[1:4]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    try:
        Draft202012Validator.check_schema(schema)
        print("ok the schema is a valid draft 2020-12 JSON Schema")
    except Exception as e:  # noqa: BLE001 - reported, not raised
        print(f"not ok the schema is a valid draft 2020-12 JSON Schema: {e}")
        return
    validator = Draft202012Validator(schema)
    with open(cases_path, encoding="utf-8") as f:
        for line in f:
            want, path = line.rstrip("\n").split(" ", 1)
            try:
                with open(path, encoding="utf-8") as doc_file:
                    doc = json.load(doc_file)
                errors = list(validator.iter_errors(doc))
                got = "refuse" if errors else "accept"
                why = f" ({errors[0].message})" if errors else ""
            except (ValueError, UnicodeDecodeError):
                got, why = "notjson", ""
            ok = "ok" if got == want else "not ok"
            print(f"{ok} schema on {path}: {got}s{why}, validator wants {want}")
    subs = {}
    with open(corpus_path, encoding="utf-8") as f:
        for line in f:
            name, value, want = line.rstrip("\n").split("\t")
            if name not in subs:
                subs[name] = Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]})
            sub = subs[name]
            got = "accept" if sub.is_valid(json.loads(value)) else "refuse"
            ok = "ok" if got == want else "not ok"
            print(f"{ok} format {name} on {value}: schema {got}s, validator {want}s")


if __name__ == "__main__":
    main()
