/* Fuzz harness: the partition table readers of the first boot: lib/gpt.c (gpt_read, and
 * gpt_relocate_backup and gpt_resize_partition, which read a table before they change it)
 * and the growfs step's plan (firstboot/step-growfs.c: its GPT and MBR readers and the
 * filesystem probe, through the step's read-only check on an image file).
 *
 * Input: HEAD %% TAIL: a 4 MiB disk image (fuzz.h). The growfs check runs on it as the file
 * /disk.img under a private --root ("growfs": {"device": "/disk.img"}); the GPT functions run
 * on a copy in memory (memfd) that they may change: the backup moves to the end of an 8 MiB
 * disk and the last partition grows to fill it. Checked: what they report done is on the
 * disk (gpt_read agrees). */
#include "fb-step.h"
#include "firstboot.h"
#include "fuzz.h"
#include "gpt.h"

#include <inttypes.h>
#include <sys/mman.h>

#define GROWN_SIZE (2u * FUZZ_IMAGE_SIZE)

extern const struct fb_step step_growfs;

static const char *root;
static char image[PATH_MAX];
static int mem = -1;
static json_object *config, *section;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	root = fuzz_tmpdir();
	unsetenv("PMOVES_FIRSTBOOT_LIVE");
	unsetenv("PMOVES_FIRSTBOOT_RUNNER");
	int r = fb_root_set(root);
	if (r < 0)
		fuzz_die("fb_root_set", r);
	fuzz_pathf(image, "%s/disk.img", root);
	if ((mem = memfd_create("fuzz-disk", MFD_CLOEXEC)) < 0)
		fuzz_die("memfd_create", errno);
	config = json_tokener_parse("{\"growfs\": {\"device\": \"/disk.img\"}}");
	if (!config || !json_object_object_get_ex(config, "growfs", &section))
		fuzz_die("the growfs config", ENOMEM);
	return 0;
}

static void gpt_ops(struct gpt_disk *d)
{
	int r = gpt_read(mem, d);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz fb-disk: gpt_read %d, %u partitions\n", r, r < 0 ? 0 : d->n);
	if (r < 0)
		return;
	/* The partition that starts last: growfs grows it. */
	const struct gpt_part *last = NULL;
	for (unsigned i = 0; i < d->n; i++)
		if (!last || d->part[i].start > last->start)
			last = &d->part[i];
	unsigned number = last ? last->number : 1;
	uint64_t start = last ? last->start : 0;

	r = gpt_relocate_backup(mem, GROWN_SIZE);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz fb-disk: gpt_relocate_backup %d\n", r);
	if (r == 0) {
		if (gpt_read(mem, d) < 0 || d->alternate_lba != GROWN_SIZE / GPT_SECTOR - 1) {
			fprintf(stderr, "fuzz: gpt_relocate_backup succeeded, the table read back does not agree\n");
			abort();
		}
		uint64_t want = (d->last_usable_lba + 1) * GPT_SECTOR - start;
		r = last ? gpt_resize_partition(mem, number, want) : -ENOENT;
		if (fuzz_verbose())
			fprintf(stderr, "fuzz fb-disk: gpt_resize_partition %u to %" PRIu64 ": %d\n", number, want, r);
		if (r == 0) {
			bool found = false;
			if (gpt_read(mem, d) < 0)
				abort();
			for (unsigned i = 0; i < d->n; i++)
				found |= d->part[i].number == number && d->part[i].size == want;
			if (!found) {
				fprintf(stderr, "fuzz: gpt_resize_partition succeeded, partition %u is not %" PRIu64 " bytes\n",
					number, want);
				abort();
			}
		}
	} else {
		/* On the table as it is: both copies checked, then one partition changed. */
		(void)gpt_resize_partition(mem, number, last ? last->size + GPT_SECTOR : GPT_SECTOR);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part parts[2];
	size_t n = fuzz_split(data, size, parts, 2);
	int fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		fuzz_die(image, errno);
	fuzz_image_fill(fd, &parts[0], n > 1 ? &parts[1] : NULL);
	close(fd);

	struct fb_ctx ctx = { .config = config };
	char *msg = NULL;
	int r = step_growfs.check(&ctx, section, &msg);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz fb-disk: growfs check %d%s%s\n", r, msg ? ": " : "", msg ? msg : "");
	free(msg);

	fuzz_image_fill(mem, &parts[0], n > 1 ? &parts[1] : NULL);
	struct gpt_disk *d = malloc(sizeof(*d)); /* 10 KiB */
	if (!d)
		abort();
	gpt_ops(d);
	free(d);
	return 0;
}
