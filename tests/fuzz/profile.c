/* Fuzz harness: the profile loader (builder/profile.c: profile_load), with "extends".
 *
 * Input: up to four profile files separated by lines "%%", written as p0.json .. p3.json into
 * a private directory (a file the input does not give is removed); p0.json is loaded. A file
 * extends another of the input with "extends": "p1"; a parent that is not there is looked up
 * in the source tree's profiles/ (PMOVES_DATADIR is the source tree), so "extends":
 * "base-debian" reaches the real profiles: a fixed parent set. On success the resolved
 * profile is printed as `show` does and its partitions looked up. */
#include "fuzz.h"
#include "profile.h"

#define FILES 4

static const char *dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dir = fuzz_tmpdir();
	/* Parents and overlays from the source tree, whatever the caller's environment says. */
	if (setenv("PMOVES_DATADIR", fuzz_srcdir(), 1) < 0)
		fuzz_die("setenv", errno);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part parts[FILES];
	size_t n = fuzz_split(data, size, parts, FILES);
	for (size_t i = 0; i < FILES; i++) {
		char name[16];
		snprintf(name, sizeof(name), "p%zu.json", i);
		if (i < n)
			fuzz_write(dir, name, parts[i].data, parts[i].len);
		else
			fuzz_unlink(dir, name);
	}

	char path[PATH_MAX];
	fuzz_pathf(path, "%s/p0.json", dir);
	struct profile *p = NULL;
	char *error = NULL;
	int r = profile_load(path, &p, &error);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz profile: %s\n", r == 0 ? "loaded" : error ? error : strerror(-r));
	if (r == 0) {
		const char *text = json_object_to_json_string_ext(p->json, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
		if (!text || !p->name || !p->arch || p->disk.n_parts > PROFILE_MAX_PARTS)
			abort(); /* a loaded profile always has these */
		(void)profile_part_by_mount(p, "/");
		(void)profile_part_by_type(p, "esp");
		profile_free(p);
	}
	free(error);
	return 0;
}
