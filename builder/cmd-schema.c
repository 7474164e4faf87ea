/* pmoves-image schema: the profile schema as a JSON Schema, from the tables the validator uses. */
#include "cmd.h"
#include "firstboot-install.h"
#include "log.h"
#include "profile-schema.h"
#include "util.h"

#include <json-c/json.h>
#include <stdio.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: pmoves-image schema\n\n"
		   "Print the JSON Schema (draft 2020-12) of a profile file: its keys, their types, and\n"
		   "the formats and enumerations 'validate' checks, made from the same tables, with\n"
		   "pmoves-firstboot's config schema for the \"firstboot\" section of a file that\n"
		   "extends none. Editors and CI can check profiles with it; what a JSON Schema cannot\n"
		   "express (sizes that must fit, extends cycles, rules across fields) is checked by\n"
		   "'validate' alone. make install puts it in the data directory as\n"
		   "schema/profile.schema.json.\n\n"
		   "exit status: 0 ok, 1 pmoves-firstboot not found or failed, 2 bad usage\n");
}

int cmd_schema(int argc, char **argv)
{
	if (argc == 2 && (STREQ(argv[1], "--help") || STREQ(argv[1], "-h"))) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	json_object *fb = NULL;
	if (firstboot_schema(&fb) < 0)
		return EXIT_FAIL;
	json_object *s = profile_json_schema(fb);
	if (!s) {
		log_error("out of memory");
		return EXIT_FAIL;
	}
	printf("%s\n", json_object_to_json_string_ext(s, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(s);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
