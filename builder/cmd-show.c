/* pmoves-image show: a profile resolved (extends, defaults), as JSON. */
#include "cmd.h"
#include "firstboot-install.h"
#include "log.h"
#include "profile.h"
#include "util.h"

#include <json-c/json.h>
#include <stdio.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: pmoves-image show NAME|FILE\n\n"
		   "Print the profile NAME (from '%s') or FILE (a path, or a name ending in .json)\n"
		   "fully resolved: after \"extends\" and with every default filled in, keys in a\n"
		   "fixed order. It checks the profile as validate does, \"firstboot\" included.\n\n"
		   "exit status: 0 ok, 2 bad usage or invalid profile, 3 no such profile\n",
		   profile_dir());
}

int cmd_show(int argc, char **argv)
{
	const char *arg = NULL;
	bool dashdash = false;
	for (int i = 1; i < argc; i++) {
		if (!dashdash && (STREQ(argv[i], "--help") || STREQ(argv[i], "-h"))) {
			usage(stdout);
			return EXIT_OK;
		}
		if (!dashdash && STREQ(argv[i], "--")) {
			dashdash = true;
			continue;
		}
		if (!dashdash && argv[i][0] == '-' && argv[i][1]) {
			log_error("'%s' is not an option of 'show'", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
		if (arg) {
			log_error("'show' takes one profile, got '%s' and '%s'", arg, argv[i]);
			return EXIT_USAGE;
		}
		arg = argv[i];
	}
	if (!arg) {
		usage(stderr);
		return EXIT_USAGE;
	}

	struct profile *p = NULL;
	_cleanup_free_ char *error = NULL;
	/* As validate does: the firstboot section too. */
	int r = firstboot_profile_load(arg, &p, &error);
	if (r < 0) {
		if (error)
			log_error("%s", error);
		else
			log_errno(r, "cannot load profile '%s'", arg);
		return r == -ENOENT ? EXIT_MISSING : EXIT_USAGE;
	}
	/* The same JSON, with DEL and C1 controls escaped too: safe for a terminal. */
	_cleanup_free_ char *text = json_text_printable(json_object_to_json_string_ext(
		p->json, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	profile_free(p);
	if (!text) {
		log_errno(-ENOMEM, "cannot show profile '%s'", arg);
		return EXIT_FAIL;
	}
	printf("%s\n", text);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
