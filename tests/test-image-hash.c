/* image-hash.c: the raw image's checksum computed while its partitions are still being made.
 * The digest must equal that of the finished file whatever order the partitions finish in, and
 * the hasher must never read a partition before it is marked done. */
#include "build.h"
#include "hash-file.h"
#include "image-hash.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>

#define MiB (UINT64_C(1) << 20)

static char path[] = "/tmp/pmoves-test-image-hash-XXXXXX";

static void bail(const char *why)
{
	printf("Bail out! %s\n", why);
	unlink(path);
	exit(1);
}

struct fixture {
	struct profile p;
	struct part_spec spec[3];
	struct table_entry e[3];
	struct build b;
};

/* A 12 MiB image: table bytes at 0 and at the end, partitions at 1, 4 and 8 MiB (3 MiB each),
 * the third one "none". */
static void fixture(struct fixture *f, int fd)
{
	static const char *outputs[] = { "raw", NULL };
	memset(f, 0, sizeof(*f));
	f->p.name = "t";
	f->p.outputs = outputs;
	const char *fs[] = { "vfat", "ext4", "none" };
	for (size_t i = 0; i < 3; i++) {
		f->spec[i].name = fs[i];
		f->spec[i].fs = fs[i];
		f->e[i].start = (1 + 3 * i + (i > 0)) * MiB;
		f->e[i].size = 3 * MiB;
		f->b.plan.parts[i].spec = &f->spec[i];
		f->b.plan.parts[i].entry = &f->e[i];
	}
	f->b.p = &f->p;
	f->b.image = path;
	f->b.plan.n = 3;
	f->b.plan.layout.disk_size = 12 * MiB;
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, 12 * MiB) < 0 || pwrite(fd, "table", 5, 0) != 5 ||
	    pwrite(fd, "backup", 6, 12 * MiB - 512) != 6)
		bail("cannot write the fixture image");
}

static void fill(int fd, const struct table_entry *e, char c)
{
	char buf[4096];
	memset(buf, c, sizeof(buf));
	for (uint64_t off = 0; off < e->size; off += 64 * 1024)
		if (pwrite(fd, buf, sizeof(buf), (off_t)(e->start + off)) != (ssize_t)sizeof(buf))
			bail("cannot write partition bytes");
}

int main(void)
{
	int fd = mkstemp(path);
	if (fd < 0)
		bail("cannot create a temp file");
	struct fixture f;
	char got[65], want[65];

	/* In order: partition 1 made, marked; then partition 2. */
	fixture(&f, fd);
	int r = image_hash_start(&f.b);
	fill(fd, &f.e[0], 'a');
	image_hash_part_done(&f.b, 0);
	fill(fd, &f.e[1], 'b');
	image_hash_part_done(&f.b, 1);
	r = r < 0 ? r : image_hash_finish(&f.b, got);
	tap_ok(r == 0 && sha256_fd(fd, want) == 0 && STREQ(got, want), "partitions made in order: the file's digest");
	tap_ok(f.b.ihash == NULL, "finish releases the hasher");

	/* Out of order, with bytes written to partition 1 after partition 2 is done: the mark must
	 * stay at partition 1's start until it is done, or the digest would miss these bytes. */
	fixture(&f, fd);
	r = image_hash_start(&f.b);
	fill(fd, &f.e[1], 'c');
	image_hash_part_done(&f.b, 1);
	usleep(200 * 1000); /* time for the thread to hash all it may */
	fill(fd, &f.e[0], 'd');
	image_hash_part_done(&f.b, 0);
	r = r < 0 ? r : image_hash_finish(&f.b, got);
	tap_ok(r == 0 && sha256_fd(fd, want) == 0 && STREQ(got, want),
	       "partitions made out of order: still the finished file's digest");

	/* A checksum asked for before every partition is done is an error, not a digest of bytes
	 * that may still change. */
	fixture(&f, fd);
	r = image_hash_start(&f.b);
	image_hash_part_done(&f.b, 0);
	tap_is_int(r < 0 ? r : image_hash_finish(&f.b, got), -EINVAL, "finish with a partition not done: EINVAL");

	/* A failed build stops the thread without a digest. */
	fixture(&f, fd);
	r = image_hash_start(&f.b);
	image_hash_stop(&f.b);
	tap_ok(r == 0 && f.b.ihash == NULL, "stop ends the thread and frees it");
	image_hash_stop(&f.b);
	tap_ok(f.b.ihash == NULL, "stop twice is harmless");

	/* An image that is not there. */
	fixture(&f, fd);
	f.b.image = "/nonexistent/pmoves.img";
	tap_is_int(image_hash_start(&f.b), -ENOENT, "a missing image: ENOENT, no thread");

	close(fd);
	unlink(path);
	return tap_done();
}
