/* pmoves-image validate: load profiles with every check, build nothing. */
#include "cmd.h"
#include "firstboot-install.h"
#include "log.h"
#include "profile.h"
#include "util.h"

#include <stdio.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: pmoves-image validate NAME|FILE...\n\n"
		   "Check each profile: NAME is looked up in '%s', FILE is a path (or a name\n"
		   "ending in .json). Prints \"'X': ok\" for a valid profile and the first problem of an\n"
		   "invalid one (FILE: .json.path: problem) on stderr.\n\n"
		   "exit status: 0 all valid, 2 bad usage or any profile invalid, 3 a profile file\n"
		   "is missing, or the pmoves-firstboot of this machine that checks \"firstboot\" (and\n"
		   "none is invalid)\n",
		   profile_dir());
}

int cmd_validate(int argc, char **argv)
{
	int first = 1;
	for (int i = 1; i < argc; i++) {
		if (STREQ(argv[i], "--")) {
			first = i + 1;
			break;
		}
		if (STREQ(argv[i], "--help") || STREQ(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		}
		if (argv[i][0] == '-' && argv[i][1]) {
			log_error("'%s' is not an option of 'validate'", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (first >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}

	bool invalid = false, missing = false;
	for (int i = first; i < argc; i++) {
		struct profile *p = NULL;
		_cleanup_free_ char *error = NULL;
		/* The firstboot section is checked by pmoves-firstboot's own schema. */
		int r = firstboot_profile_load(argv[i], &p, &error);
		profile_free(p);
		if (r == 0) {
			printf("'%s': ok\n", argv[i]);
			fflush(stdout);
			continue;
		}
		if (error)
			log_error("%s", error);
		else
			log_errno(r, "cannot load profile '%s'", argv[i]);
		if (r == -ENOENT)
			missing = true;
		else
			invalid = true;
	}
	return invalid ? EXIT_USAGE : missing ? EXIT_MISSING : EXIT_OK;
}
