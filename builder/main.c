/* pmoves-image: build bootable disk images from machine profiles, and use them. */
#include "cmd.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "build", cmd_build, "build the disk image of a profile" },
	{ "run", cmd_run, "boot an image in QEMU" },
	{ "flash", cmd_flash, "write an image to cards and sticks, and check it" },
	{ "serve", cmd_serve, "serve a directory over HTTP(S), for netboot" },
	{ "inspect", cmd_inspect, "show an image's partition table and filesystems" },
	{ "list", cmd_list, "list the profiles" },
	{ "show", cmd_show, "print a profile resolved, as JSON" },
	{ "validate", cmd_validate, "check a profile without building" },
	{ "schema", cmd_schema, "print the profile schema (JSON Schema)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pmoves-image <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'pmoves-image <command> --help' describes a command.\n"
		   "exit status: 0 ok, 1 failed, 2 bad usage or invalid profile, 3 missing tool or file\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (STREQ(argv[1], "--help") || STREQ(argv[1], "-h") || STREQ(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (STREQ(argv[1], "--version")) {
		printf("pmoves-image %s\n", PMOVES_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (STREQ(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	_cleanup_free_ char *shown = str_printable(argv[1], strlen(argv[1]), NULL);
	fprintf(stderr, "pmoves-image: '%s' is not a command, see 'pmoves-image --help'\n", shown ? shown : "?");
	return EXIT_USAGE;
}
