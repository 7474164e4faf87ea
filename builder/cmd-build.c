/* pmoves-image build NAME [-o DIR] [--seed S] [--refresh] [-v] */
#include "build-run.h"
#include "cmd.h"
#include "firstboot-install.h"
#include "log.h"
#include "profile.h"
#include "util.h"

#include <getopt.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: pmoves-image build NAME|FILE [-o DIR] [--seed S] [--refresh] [-v]\n"
		   "\n"
		   "Build the disk image of a profile into DIR/NAME/ (default images/NAME/):\n"
		   "NAME.img (raw, sparse), manifest.json, SHA256SUMS and build.log, and the\n"
		   "profile's other outputs: NAME.img.bmap, NAME.img.zst, NAME.img.xz, NAME.qcow2.\n"
		   "\n"
		   "  -o, --output DIR  where to put NAME/ (default: images)\n"
		   "      --seed S      identifiers (UUIDs, serials) derive from the profile and S\n"
		   "                    (default: the profile name)\n"
		   "      --refresh     rebuild the cached root filesystem\n"
		   "  -v, --verbose     show external commands and their output\n"
		   "\n"
		   "SOURCE_DATE_EPOCH, when set, fixes every timestamp: the same inputs give the same\n"
		   "bytes. The rootfs cache is $XDG_CACHE_HOME/pmoves-image (~/.cache/pmoves-image).\n"
		   "The staging tree goes to /dev/shm when it is a tmpfs with room and memory for it,\n"
		   "else next to the outputs; PMOVES_WORKDIR=DIR puts it in DIR.\n"
		   "A root filesystem for another architecture installs its packages under qemu-user,\n"
		   "with this machine's own dash, coreutils, sed, grep and dpkg-deb standing in when it\n"
		   "runs the same Debian release; PMOVES_NATIVE_TOOLS=0 runs everything emulated.\n");
}

int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' }, { "seed", required_argument, NULL, 's' },
		{ "refresh", no_argument, NULL, 'r' },      { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },         {},
	};
	struct build_opts bo = { .out_base = "images" };
	int c;
	while ((c = getopt_long(argc, argv, "o:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			bo.out_base = optarg;
			break;
		case 's':
			bo.seed = optarg;
			break;
		case 'r':
			bo.refresh = true;
			break;
		case 'v':
			log_verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!*bo.out_base) {
		log_error("output directory is empty");
		return EXIT_USAGE;
	}
	if (bo.seed && (strlen(bo.seed) > 256 || strpbrk(bo.seed, "\n\r"))) {
		log_error("seed must be at most 256 characters on one line");
		return EXIT_USAGE;
	}

	struct profile *p = NULL;
	_cleanup_free_ char *err = NULL;
	int r = firstboot_profile_load(argv[optind], &p, &err);
	if (r < 0) {
		if (err)
			log_error("%s", err);
		else
			log_errno(r, "cannot load profile '%s'", argv[optind]);
		return r == -EINVAL ? EXIT_USAGE : EXIT_MISSING;
	}
	r = build_profile(p, &bo);
	profile_free(p);
	return r;
}
