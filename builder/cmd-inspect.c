/* pmoves-image inspect IMAGE [--json]: what is in an image, and does it match its manifest. */
#include "cmd.h"
#include "inspect.h"
#include "registry.h"
#include "log.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>

static void inspect_usage(FILE *f)
{
	fprintf(f,
		"usage: pmoves-image inspect IMAGE [--json]\n"
		"\n"
		"Show the partition table of a disk image (or block device) and each partition's\n"
		"start, size, type, name and UUID, with its filesystem type, label and UUID, as\n"
		"libblkid reads them. When a manifest.json sits beside the image, compare the two\n"
		"field by field: the table's type, disk GUID (GPT) or disk id (MBR) and size; each\n"
		"partition's start, size, type_guid and name (GPT) or mbr_type (MBR), uuid, fs,\n"
		"fs_uuid and label. GUIDs, fs_uuid and FAT labels compare case-insensitively;\n"
		"fields the manifest leaves out are not compared.\n"
		"\n"
		"options:\n"
		"  --json     print one JSON object instead of text\n"
		"  -h, --help show this help\n"
		"\n"
		"Problems of the image itself are reported too: a partition beyond the end of the\n"
		"image, partitions that overlap, GPT entries libblkid and Linux ignore (outside the\n"
		"usable sectors, past the end of the disk).\n"
		"\n"
		"exit status: 0 ok; 1 the manifest differs, the image has a problem above, no\n"
		"partition table, or the image cannot be read; 2 bad usage; 3 IMAGE does not exist\n");
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	bool json = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			inspect_usage(stdout);
			return EXIT_OK;
		default:
			log_error("'%s' is not an option of inspect, see 'pmoves-image inspect --help'",
				  argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		log_error("missing IMAGE, see 'pmoves-image inspect --help'");
		return EXIT_USAGE;
	}
	if (argc - optind > 1) {
		log_error("too many arguments: '%s', inspect takes one IMAGE", argv[optind + 1]);
		return EXIT_USAGE;
	}
	const char *path = argv[optind];

	struct inspect_image *img = NULL;
	int r = inspect_image(path, &img);
	if (r == -ENOENT)
		return EXIT_MISSING;
	if (r == -ENOMEM)
		log_errno(r, "cannot inspect '%s'", path);
	if (r < 0)
		return EXIT_FAIL;

	struct inspect_report *rep = NULL;
	r = inspect_compare_manifest(img, &rep);
	if (r < 0) {
		if (r == -ENOMEM)
			log_errno(r, "cannot compare '%s' with its manifest", path);
		inspect_image_free(img);
		return EXIT_FAIL;
	}

	struct boot_view view = { 0 };
	r = boot_inspect(path, img, &view);
	if (r < 0 && r != -ENODATA) {
		log_errno(r, "cannot read the boot files of '%s'", path);
		inspect_report_free(rep);
		inspect_image_free(img);
		return EXIT_FAIL;
	}
	bool boot_ok = true;
	for (size_t i = 0; i < view.n_checks; i++)
		boot_ok = boot_ok && view.checks[i].ok;
	int ret = inspect_problems(img) || rep->n_mismatches || !boot_ok ? EXIT_FAIL : EXIT_OK;
	if (json) {
		struct json_object *o = NULL;
		r = inspect_to_json(img, rep, &o);
		if (r == 0 && view.loader)
			r = boot_view_json(&view, o);
		if (r < 0) {
			log_errno(r, "cannot format '%s' as JSON", path);
			ret = EXIT_FAIL;
		} else {
			const char *s = json_object_to_json_string_ext(
				o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
			if (!s || printf("%s\n", s) < 0)
				ret = EXIT_FAIL;
			json_object_put(o);
		}
	} else {
		inspect_print_text(img, rep, stdout);
		if (view.loader)
			boot_view_print(&view, stdout);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		log_error("cannot write the output of inspect");
		ret = EXIT_FAIL;
	}
	boot_view_done(&view);
	inspect_report_free(rep);
	inspect_image_free(img);
	return ret;
}
