/* pmoves-image list: the profiles in profile_dir(), with their descriptions. */
#include "cmd.h"
#include "firstboot-install.h"
#include "log.h"
#include "profile.h"
#include "util.h"

#include <json-c/json.h>
#include <stdio.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: pmoves-image list [--json]\n\n"
		   "List the profiles in the profile directory '%s': name and description.\n"
		   "A profile that does not load is listed as \"(invalid: ...)\".\n\n"
		   "  --json   print a JSON array of {name, description} or {name, error}\n\n"
		   "exit status: 0 all profiles valid, 2 bad usage or an invalid profile,\n"
		   "3 no profile directory\n",
		   profile_dir());
}

struct entry {
	const char *name;
	struct profile *p;
	char *error;
};

int cmd_list(int argc, char **argv)
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (STREQ(argv[i], "--help") || STREQ(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		}
		if (STREQ(argv[i], "--json"))
			json = true;
		else {
			log_error("'%s' is not an option or argument of 'list'", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}

	_cleanup_strv_ char **names = NULL;
	int r = profile_list(&names);
	if (r < 0) {
		log_errno(r, "cannot list the profile directory '%s'", profile_dir());
		return r == -ENOENT ? EXIT_MISSING : EXIT_FAIL;
	}

	size_t n = strv_length(names), width = 0;
	_cleanup_free_ struct entry *e = calloc(n + 1, sizeof(*e));
	if (!e) {
		log_errno(-ENOMEM, "cannot list profiles");
		return EXIT_FAIL;
	}
	int ret = EXIT_OK;
	for (size_t i = 0; i < n; i++) {
		e[i].name = names[i];
		r = firstboot_profile_load(names[i], &e[i].p, &e[i].error);
		if (r < 0) {
			ret = EXIT_USAGE;
			if (!e[i].error && asprintf(&e[i].error, "%s", strerror(-r)) < 0)
				e[i].error = NULL;
		}
		/* Aligned as printed: escaped (below). */
		_cleanup_free_ char *shown = str_printable(names[i], strlen(names[i]), NULL);
		if (shown && strlen(shown) > width)
			width = strlen(shown);
	}

	if (json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; a && i < n; i++) {
			json_object *o = json_object_new_object();
			if (!o || json_object_array_add(a, o) < 0) {
				json_object_put(o);
				json_object_put(a);
				a = NULL;
				break;
			}
			json_object_object_add(o, "name", json_object_new_string(e[i].name));
			if (e[i].p)
				json_object_object_add(o, "description",
						       json_object_new_string(e[i].p->description ? e[i].p->description : ""));
			else
				json_object_object_add(o, "error", json_object_new_string(e[i].error ? e[i].error : "?"));
		}
		_cleanup_free_ char *text = a ? json_text_printable(json_object_to_json_string_ext(
							 a, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								    JSON_C_TO_STRING_NOSLASHESCAPE))
					      : NULL;
		if (text)
			printf("%s\n", text);
		else {
			log_errno(-ENOMEM, "cannot list profiles");
			ret = EXIT_FAIL;
		}
		json_object_put(a);
	} else {
		/* Names, descriptions and messages come from files: printable, whatever they hold. */
		for (size_t i = 0; i < n; i++) {
			const char *what = e[i].p ? (e[i].p->description ? e[i].p->description : "")
						  : (e[i].error ? e[i].error : "?");
			_cleanup_free_ char *name = str_printable(e[i].name, strlen(e[i].name), NULL),
					    *text = str_printable(what, strlen(what), NULL);
			if (!name || !text) {
				log_errno(-ENOMEM, "cannot list profiles");
				ret = EXIT_FAIL;
				break;
			}
			printf(e[i].p ? "%-*s  %s\n" : "%-*s  (invalid: %s)\n", (int)width, name, text);
		}
	}

	for (size_t i = 0; i < n; i++) {
		profile_free(e[i].p);
		free(e[i].error);
	}
	return ret;
}
