/* Fuzz harness: `pmoves-image inspect` (builder/inspect.c): libblkid's partition table and
 * filesystem probes as inspect uses them, the checks on what they return, the comparison with
 * a manifest.json beside the image, and both outputs (text and JSON).
 *
 * Input: HEAD %% TAIL %% MANIFEST: a 4 MiB image file (fuzz.h: HEAD at its start, TAIL at its
 * end) and, when the input has a third part, manifest.json beside it. */
#include "fuzz.h"
#include "inspect.h"

static const char *dir;
static char image[PATH_MAX];
static FILE *null_out;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dir = fuzz_tmpdir();
	fuzz_pathf(image, "%s/disk.img", dir);
	if (!(null_out = fopen("/dev/null", "we")))
		fuzz_die("/dev/null", errno);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part parts[3];
	size_t n = fuzz_split(data, size, parts, 3);
	int fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		fuzz_die(image, errno);
	fuzz_image_fill(fd, &parts[0], n > 1 ? &parts[1] : NULL);
	close(fd);
	if (n > 2)
		fuzz_write(dir, "manifest.json", parts[2].data, parts[2].len);
	else
		fuzz_unlink(dir, "manifest.json");

	struct inspect_image *img = NULL;
	int r = inspect_image(image, &img);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz inspect: %s, %zu partitions\n", r == 0 ? img->table : strerror(-r), r == 0 ? img->n_parts : 0);
	if (r < 0)
		return 0;
	if (img->size != FUZZ_IMAGE_SIZE || (img->n_parts && !img->parts))
		abort();
	struct inspect_report *rep = NULL;
	r = inspect_compare_manifest(img, &rep);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz inspect: manifest %s, %zu mismatches\n",
			r < 0 ? strerror(-r) : rep->present ? "compared" : "absent", rep ? rep->n_mismatches : 0);
	inspect_print_text(img, rep, null_out);
	struct json_object *j = NULL;
	if (inspect_to_json(img, rep, &j) == 0) {
		if (!json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY))
			abort();
		json_object_put(j);
	}
	inspect_report_free(rep);
	inspect_image_free(img);
	return 0;
}
