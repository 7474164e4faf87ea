#!/usr/bin/env python3
"""A libFuzzer dictionary from a JSON Schema on stdin (make fuzz: `pmoves-image schema` for the
profile harness, `pmoves-firstboot schema` for fb-config): every property name as a quoted
JSON key, and every enumerated or constant string value, so that the fuzzer writes keys and
values the validator knows without guessing them byte by byte. The schemas are made from the
validators' own tables, so the dictionary follows them."""
import json
import sys


def walk(o, words):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "properties" and isinstance(v, dict):
                words.update('"%s":' % name for name in v)
            elif k in ("enum", "const"):
                for e in v if isinstance(v, list) else [v]:
                    if isinstance(e, str):
                        words.add('"%s"' % e)
            walk(v, words)
    elif isinstance(o, list):
        for v in o:
            walk(v, words)


def main():
    words = set()
    walk(json.load(sys.stdin), words)
    for w in sorted(words):
        if not w.isascii():
            continue
        # libFuzzer's dictionary syntax: a quoted string, \\ and \" escaped, \xNN for others.
        esc = "".join("\\" + c if c in '\\"' else c if c.isprintable() else "\\x%02x" % ord(c) for c in w)
        print('"%s"' % esc)


if __name__ == "__main__":
    main()
