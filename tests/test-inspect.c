/* pmoves-image inspect, end to end: real GPT and MBR images made with sgdisk, sfdisk,
 * mkfs.vfat and mke2fs in files (no loop devices, no mounts), then the real binary. */
#include "hash.h"
#include "inspect.h"
#include "run.h"
#include "tap.h"
#include "util.h"

#include <endian.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define MiB (1024ull * 1024ull)
#define DISK_GUID "6a1c0d5e-7b2f-4c3d-9e8f-0a1b2c3d4e5f"
#define ESP_UUID "0f3e1c2a-1111-4a5b-8c9d-00000000e5e5"
#define ROOT_UUID "0f3e1c2a-2222-4a5b-8c9d-000000000f00"
#define ROOT_FS_UUID "5b0c4d1e-3333-4f6a-9b8c-0000000000aa"
#define MBR_ROOT_FS_UUID "5b0c4d1e-4444-4f6a-9b8c-0000000000bb"
#define ESP_TYPE "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
#define ROOT_TYPE "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
#define P1_START (1 * MiB)
#define P1_SIZE (32 * MiB)
#define P2_START (33 * MiB)
#define P2_SIZE (30 * MiB)

static char tmpdir[PATH_MAX], *pmimage, *fixtures;

static char *path_in(const char *fmt, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, fmt, tmpdir, name) < 0)
		abort();
	return p;
}

/* Run a tool; its output goes to a log in tmpdir, shown on failure. */
static int tool(char *const argv[], int in_fd)
{
	_cleanup_free_ char *log = path_in("%s/%s", "tool.log");
	_cleanup_close_ int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	struct run_opts o = { .out_fd = fd, .in_fd = in_fd };
	int r = run_argv(argv, &o);
	if (r != 0) {
		_cleanup_free_ char *cmd = argv_to_string(argv), *out = NULL;
		tap_diag("'%s' failed with %d", cmd ? cmd : argv[0], r);
		if (read_file(log, 1 << 20, &out, NULL) == 0)
			tap_diag("%s", out);
	}
	return r;
}

/* SIGALRM: a command that hangs is killed, and fails its test. */
static void kill_child(int sig)
{
	(void)sig;
	if (run_current_child > 0)
		kill(run_current_child, SIGKILL);
}

struct result {
	int status;
	char *out, *err;
};

static void result_clear(struct result *r)
{
	free(r->out);
	free(r->err);
	*r = (struct result){ .status = -1 };
}

/* pmoves-image inspect ARGS...: stdout and stderr captured separately. */
static void inspect(struct result *res, const char *a1, const char *a2)
{
	result_clear(res);
	_cleanup_free_ char *errpath = path_in("%s/%s", "stderr.txt");
	_cleanup_close_ int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char *argv[] = { pmimage, (char *)"inspect", (char *)a1, (char *)a2, NULL };
	struct run_opts o = { .out_fd = fd, .in_fd = -1, .capture = &res->out, .capture_max = 4u << 20 };
	res->status = run_argv(argv, &o);
	if (read_file(errpath, 1 << 20, &res->err, NULL) < 0)
		res->err = strdup("");
	if (!res->out)
		res->out = strdup("");
}

/* The value of "  KEY:" in the block of partition NUMBER of the text output, spaces trimmed. */
static char *field(const char *out, unsigned number, const char *key)
{
	static char val[512];
	char head[32], k[64];
	snprintf(head, sizeof(head), "\npartition %u\n", number);
	snprintf(k, sizeof(k), "\n  %s:", key);
	const char *b = strstr(out, head);
	if (!b)
		return NULL;
	b += strlen(head) - 1;
	const char *end = strstr(b + 1, "\n\n");
	const char *l = strstr(b, k);
	if (!l || (end && l > end))
		return NULL;
	l += strlen(k);
	while (*l == ' ')
		l++;
	size_t n = strcspn(l, "\n");
	if (n >= sizeof(val))
		return NULL;
	memcpy(val, l, n);
	val[n] = '\0';
	return val;
}

static struct json_object *jparse(const char *s)
{
	return s ? json_tokener_parse(s) : NULL;
}

static struct json_object *jget(struct json_object *o, const char *path)
{
	/* "a.b.0.c": object keys and array indexes. */
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	char *save = NULL;
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array)) {
			uint64_t i;
			if (parse_u64(k, &i) < 0 || i >= json_object_array_length(o))
				return NULL;
			o = json_object_array_get_idx(o, (size_t)i);
		} else if (!json_object_object_get_ex(o, k, &o))
			return NULL;
	}
	return o;
}

static const char *jstr_at(struct json_object *o, const char *path)
{
	struct json_object *v = jget(o, path);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static long long jint_at(struct json_object *o, const char *path)
{
	struct json_object *v = jget(o, path);
	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

static int make_sparse(const char *path, uint64_t size)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -errno;
	return 0;
}

/* mkfs.vfat -C into a file of its own, then spliced into the image at OFFSET. */
static int make_fat(const char *img, uint64_t offset, uint64_t size, const char *serial, const char *label)
{
	_cleanup_free_ char *fat = path_in("%s/%s", "part.fat");
	unlink(fat);
	char kib[32];
	snprintf(kib, sizeof(kib), "%llu", (unsigned long long)(size / 1024));
	char *argv[] = { "mkfs.vfat", "-C", fat, kib, "-i", (char *)serial, "-n", (char *)label, NULL };
	if (tool(argv, -1) != 0)
		return -EIO;
	_cleanup_close_ int in = open(fat, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = open(img, O_WRONLY | O_CLOEXEC);
	if (in < 0 || out < 0)
		return -errno;
	int r = copy_sparse(in, 0, out, (off_t)offset, size);
	unlink(fat);
	return r;
}

static int make_ext4(const char *img, uint64_t offset, uint64_t size, const char *uuid, const char *label)
{
	char off[64], kib[32];
	snprintf(off, sizeof(off), "offset=%llu", (unsigned long long)offset);
	snprintf(kib, sizeof(kib), "%lluk", (unsigned long long)(size / 1024));
	char *argv[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-U", (char *)uuid, "-L", (char *)label,
			 "-E", off, (char *)img, kib, NULL };
	return tool(argv, -1) == 0 ? 0 : -EIO;
}

static int make_gpt_image(const char *img)
{
	if (make_sparse(img, 64 * MiB) < 0)
		return -EIO;
	char *argv[] = { "sgdisk", "-U", DISK_GUID,
			 "-n", "1:2048:+32M", "-t", "1:" ESP_TYPE, "-c", "1:esp", "-u", "1:" ESP_UUID,
			 "-n", "2:67584:+30M", "-t", "2:" ROOT_TYPE, "-c", "2:root", "-u", "2:" ROOT_UUID,
			 (char *)img, NULL };
	if (tool(argv, -1) != 0)
		return -EIO;
	if (make_fat(img, P1_START, P1_SIZE, "1234ABCD", "ESP") < 0)
		return -EIO;
	return make_ext4(img, P2_START, P2_SIZE, ROOT_FS_UUID, "root");
}

static int make_mbr_image(const char *img)
{
	if (make_sparse(img, 64 * MiB) < 0)
		return -EIO;
	static const char script[] = "label: dos\n"
				     "label-id: 0x12345678\n"
				     "start=2048, size=65536, type=c, bootable\n"
				     "start=67584, size=61440, type=83\n";
	_cleanup_free_ char *sp = path_in("%s/%s", "mbr.sfdisk");
	if (write_file_atomic(sp, script, strlen(script), 0644) < 0)
		return -EIO;
	_cleanup_close_ int in = open(sp, O_RDONLY | O_CLOEXEC);
	char *argv[] = { "sfdisk", "--no-reread", "--no-tell-kernel", (char *)img, NULL };
	if (in < 0 || tool(argv, in) != 0)
		return -EIO;
	if (make_fat(img, P1_START, P1_SIZE, "0BADF00D", "BOOT") < 0)
		return -EIO;
	return make_ext4(img, P2_START, P2_SIZE, MBR_ROOT_FS_UUID, "rootfs");
}

static int copy_file(const char *from, const char *to, uint64_t len)
{
	_cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in < 0 || out < 0 || ftruncate(out, (off_t)len) < 0)
		return -errno;
	return copy_sparse(in, 0, out, 0, len);
}

/* Rewrite the GPT header at LBA of IMG to claim N_ENTRIES entries, with a correct CRC. */
static int patch_gpt_header(const char *img, uint64_t lba, uint32_t n_entries)
{
	_cleanup_close_ int fd = open(img, O_RDWR | O_CLOEXEC);
	uint8_t h[92];
	if (fd < 0 || pread(fd, h, sizeof(h), (off_t)(lba * 512)) != (ssize_t)sizeof(h))
		return -EIO;
	uint32_t v = htole32(n_entries), crc = 0;
	memcpy(h + 80, &v, 4);
	memcpy(h + 16, &crc, 4);
	crc = htole32(crc32_ieee(0, h, sizeof(h)));
	memcpy(h + 16, &crc, 4);
	return pwrite(fd, h, sizeof(h), (off_t)(lba * 512)) == (ssize_t)sizeof(h) ? 0 : -EIO;
}

/* Put GPT entry SLOT (0-based) of IMG at sectors FIRST..LAST (a Linux data partition), in both
 * the primary and the backup table, CRCs recomputed: what sgdisk refuses to write. */
static int set_gpt_entry(const char *img, uint32_t slot, uint64_t first, uint64_t last)
{
	static const uint8_t linux_data[16] = { 0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
						0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };
	_cleanup_close_ int fd = open(img, O_RDWR | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -EIO;
	uint64_t lbas[2] = { 1, (uint64_t)st.st_size / 512 - 1 };
	for (int k = 0; k < 2; k++) {
		uint8_t h[92], a[128 * 128];
		if (pread(fd, h, sizeof(h), (off_t)(lbas[k] * 512)) != (ssize_t)sizeof(h))
			return -EIO;
		uint64_t alba;
		uint32_t n, esz, crc = 0;
		memcpy(&alba, h + 72, 8);
		memcpy(&n, h + 80, 4);
		memcpy(&esz, h + 84, 4);
		alba = le64toh(alba), n = le32toh(n), esz = le32toh(esz);
		if (n != 128 || esz != 128 || pread(fd, a, sizeof(a), (off_t)(alba * 512)) != (ssize_t)sizeof(a))
			return -EIO;
		uint8_t *e = a + slot * 128;
		memset(e, 0, 128);
		memcpy(e, linux_data, 16);
		for (int i = 0; i < 16; i++)
			e[16 + i] = (uint8_t)(0x30 + i);
		uint64_t f = htole64(first), l = htole64(last);
		memcpy(e + 32, &f, 8);
		memcpy(e + 40, &l, 8);
		uint32_t acrc = htole32(crc32_ieee(0, a, sizeof(a)));
		memcpy(h + 88, &acrc, 4);
		memcpy(h + 16, &crc, 4);
		crc = htole32(crc32_ieee(0, h, sizeof(h)));
		memcpy(h + 16, &crc, 4);
		if (pwrite(fd, a, sizeof(a), (off_t)(alba * 512)) != (ssize_t)sizeof(a) ||
		    pwrite(fd, h, sizeof(h), (off_t)(lbas[k] * 512)) != (ssize_t)sizeof(h))
			return -EIO;
	}
	return 0;
}

static int write_json(const char *path, struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	return write_file_atomic(path, s, strlen(s), 0644);
}

static struct json_object *load_fixture(const char *name)
{
	_cleanup_free_ char *p = NULL;
	if (asprintf(&p, "%s/%s", fixtures, name) < 0)
		abort();
	return json_object_from_file(p);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

static void find_paths(const char *argv0)
{
	const char *b = getenv("PMOVES_BUILD");
	_cleanup_free_ char *dir = NULL;
	if (b && *b)
		dir = xstrdup(b);
	else {
		/* build/tests/test-inspect.t -> build */
		dir = xstrdup(argv0);
		char *s = strrchr(dir, '/');
		if (s) {
			*s = '\0';
			s = strrchr(dir, '/');
		}
		if (s)
			*s = '\0';
		else {
			free(dir);
			dir = xstrdup("build");
		}
	}
	char cwd[PATH_MAX];
	if (dir[0] != '/' && getcwd(cwd, sizeof(cwd))) {
		if (asprintf(&pmimage, "%s/%s/pmoves-image", cwd, dir) < 0)
			abort();
	} else if (asprintf(&pmimage, "%s/pmoves-image", dir) < 0)
		abort();
	/* The source tree: $PMOVES_SRCDIR, the current directory (make check), or the parent of
	 * the build directory. */
	const char *src = getenv("PMOVES_SRCDIR");
	if (asprintf(&fixtures, "%s/tests/fixtures/inspect", src && *src ? src : ".") < 0)
		abort();
	if (!(src && *src) && access(fixtures, F_OK) < 0) {
		free(fixtures);
		if (asprintf(&fixtures, "%s/../tests/fixtures/inspect", pmimage) < 0)
			abort();
		char *slash = strstr(fixtures, "/pmoves-image/../");
		if (slash)
			memmove(slash, slash + strlen("/pmoves-image"), strlen(slash + strlen("/pmoves-image")) + 1);
	}
	tap_diag("binary '%s', fixtures '%s'", pmimage, fixtures);
}

static void test_printable(void)
{
	_cleanup_free_ char *a = inspect_printable("a\x1b[2Jb", 6);
	tap_is_str(a, "a\\x1b[2Jb", "printable: an escape sequence is neutralised");
	_cleanup_free_ char *b = inspect_printable("caf\xc3\xa9", 5);
	tap_is_str(b, "caf\xc3\xa9", "printable: valid UTF-8 is kept");
	_cleanup_free_ char *c = inspect_printable("x\xff\xc2\x9by\xe0\x80", 7);
	tap_is_str(c, "x\\xff\\xc2\\x9by\\xe0\\x80", "printable: invalid UTF-8 and C1 controls are escaped");
}

int main(int argc, char **argv)
{
	(void)argc;
	static const char *const tools[][2] = {
		{ "sgdisk", "gdisk" }, { "sfdisk", "fdisk" }, { "mkfs.vfat", "dosfstools" }, { "mke2fs", "e2fsprogs" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++) {
		char why[128];
		snprintf(why, sizeof(why), "%s not found (package %s)", tools[i][0], tools[i][1]);
		if (find_program(tools[i][0], NULL) < 0)
			tap_skip_all(why);
	}
	find_paths(argv[0]);

	test_printable();

	if (access(pmimage, X_OK) < 0) {
		tap_ok(0, "the pmoves-image binary exists at '%s'", pmimage);
		return tap_done();
	}
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/pmoves-inspect-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		tap_ok(0, "mkdtemp");
		return tap_done();
	}
	_cleanup_free_ char *gdir = path_in("%s/%s", "gpt"), *mdir = path_in("%s/%s", "mbr"),
			      *bdir = path_in("%s/%s", "bad");
	mkdir(gdir, 0755);
	mkdir(mdir, 0755);
	mkdir(bdir, 0755);
	_cleanup_free_ char *gimg = path_in("%s/gpt/%s", "disk.img"), *gman = path_in("%s/gpt/%s", "manifest.json"),
			      *mimg = path_in("%s/mbr/%s", "disk.img"), *mman = path_in("%s/mbr/%s", "manifest.json");
	_cleanup_free_ char *zimg = path_in("%s/bad/%s", "zero.img"), *tg = path_in("%s/bad/%s", "truncated-gpt.img"),
			      *tm = path_in("%s/bad/%s", "truncated-mbr.img"),
			      *hg = path_in("%s/bad/%s", "absurd-entries.img"),
			      *missing = path_in("%s/bad/%s", "no-such.img");
	struct result res = { .status = -1 };
	struct json_object *j = NULL, *man = NULL, *p1 = NULL, *p3 = NULL;

	/* A GPT image with an ESP and an x86_64 root, no manifest. */
	if (!tap_ok(make_gpt_image(gimg) == 0, "build a GPT image with sgdisk, mkfs.vfat and mke2fs"))
		goto out;
	inspect(&res, gimg, NULL);
	tap_is_int(res.status, 0, "gpt: exit 0 without a manifest");
	tap_contains(res.out, "\ntable: gpt\n", "gpt: table type");
	tap_contains(res.out, "\ndisk guid: " DISK_GUID "\n", "gpt: disk GUID");
	tap_contains(res.out, "\nsize: 67108864 (64.0 MiB)\n", "gpt: image size");
	tap_contains(res.out, "\npartitions: 2\n", "gpt: two partitions");
	tap_is_str(field(res.out, 1, "start"), "1048576 (1.0 MiB)", "gpt p1: start");
	tap_is_str(field(res.out, 1, "size"), "33554432 (32.0 MiB)", "gpt p1: size");
	tap_is_str(field(res.out, 1, "type"), ESP_TYPE " (esp)", "gpt p1: type GUID and name");
	tap_is_str(field(res.out, 1, "name"), "esp", "gpt p1: partition name");
	tap_is_str(field(res.out, 1, "uuid"), ESP_UUID, "gpt p1: partition UUID");
	tap_is_str(field(res.out, 1, "fs"), "vfat", "gpt p1: filesystem");
	tap_is_str(field(res.out, 1, "label"), "ESP", "gpt p1: label");
	tap_is_str(field(res.out, 1, "fs uuid"), "1234-ABCD", "gpt p1: FAT serial");
	tap_is_str(field(res.out, 2, "start"), "34603008 (33.0 MiB)", "gpt p2: start");
	tap_is_str(field(res.out, 2, "size"), "31457280 (30.0 MiB)", "gpt p2: size");
	tap_is_str(field(res.out, 2, "type"), ROOT_TYPE " (root, x86_64)", "gpt p2: type GUID and name");
	tap_is_str(field(res.out, 2, "name"), "root", "gpt p2: partition name");
	tap_is_str(field(res.out, 2, "uuid"), ROOT_UUID, "gpt p2: partition UUID");
	tap_is_str(field(res.out, 2, "fs"), "ext4", "gpt p2: filesystem");
	tap_is_str(field(res.out, 2, "label"), "root", "gpt p2: label");
	tap_is_str(field(res.out, 2, "fs uuid"), ROOT_FS_UUID, "gpt p2: ext4 UUID");
	tap_contains(res.out, "\nmanifest: none\n", "gpt: no manifest said so");

	inspect(&res, gimg, "--json");
	j = jparse(res.out);
	tap_ok(j != NULL && res.status == 0, "gpt --json: parses, exit 0");
	tap_ok(json_object_is_type(jget(j, "size"), json_type_int) && jint_at(j, "size") == 67108864,
	       "gpt --json: size is the number 67108864");
	tap_is_str(jstr_at(j, "table.type"), "gpt", "gpt --json: table.type");
	tap_is_str(jstr_at(j, "table.disk_guid"), DISK_GUID, "gpt --json: table.disk_guid");
	tap_is_int(json_object_array_length(jget(j, "partitions")), 2, "gpt --json: two partitions");
	tap_is_int(jint_at(j, "partitions.0.number"), 1, "gpt --json: p1 number");
	tap_is_int(jint_at(j, "partitions.0.start"), P1_START, "gpt --json: p1 start");
	tap_is_int(jint_at(j, "partitions.0.size"), P1_SIZE, "gpt --json: p1 size");
	tap_is_str(jstr_at(j, "partitions.0.type_guid"), ESP_TYPE, "gpt --json: p1 type_guid");
	tap_is_str(jstr_at(j, "partitions.0.type"), "esp", "gpt --json: p1 type");
	tap_is_str(jstr_at(j, "partitions.0.uuid"), ESP_UUID, "gpt --json: p1 uuid");
	tap_is_str(jstr_at(j, "partitions.0.fs"), "vfat", "gpt --json: p1 fs");
	tap_is_str(jstr_at(j, "partitions.0.fs_uuid"), "1234-ABCD", "gpt --json: p1 fs_uuid");
	tap_is_str(jstr_at(j, "partitions.0.label"), "ESP", "gpt --json: p1 label");
	tap_is_int(jint_at(j, "partitions.1.start"), P2_START, "gpt --json: p2 start");
	tap_is_str(jstr_at(j, "partitions.1.name"), "root", "gpt --json: p2 name");
	tap_is_str(jstr_at(j, "partitions.1.fs"), "ext4", "gpt --json: p2 fs");
	tap_is_str(jstr_at(j, "partitions.1.fs_uuid"), ROOT_FS_UUID, "gpt --json: p2 fs_uuid");
	tap_is_int(jint_at(j, "partitions.1.fs_block_size"), 1024, "gpt --json: p2 fs_block_size");
	tap_ok(json_object_get_boolean(jget(j, "partitions.1.beyond_end")) == 0, "gpt --json: p2 within the image");
	tap_ok(jget(j, "manifest.present") && !json_object_get_boolean(jget(j, "manifest.present")),
	       "gpt --json: manifest.present is false");
	json_object_put(j);
	j = NULL;

	/* The manifest as the build would write it: everything matches (fs_uuid and disk GUID in
	 * another case on purpose). */
	man = load_fixture("manifest-gpt.json");
	if (!tap_ok(man != NULL, "load fixture manifest-gpt.json from '%s'", fixtures))
		goto out;
	write_json(gman, man);
	inspect(&res, gimg, NULL);
	tap_is_int(res.status, 0, "gpt + matching manifest: exit 0");
	tap_contains(res.out, "\n  table: match\n", "gpt + matching manifest: table matches");
	tap_contains(res.out, "\n  partition 1: match\n", "gpt + matching manifest: partition 1 matches");
	tap_contains(res.out, "\n  partition 2: match\n", "gpt + matching manifest: partition 2 matches");
	tap_contains(res.out, "\nmanifest: matches\n", "gpt + matching manifest: matches");
	inspect(&res, gimg, "--json");
	j = jparse(res.out);
	tap_ok(j && json_object_get_boolean(jget(j, "manifest.present")) &&
		       json_object_get_boolean(jget(j, "manifest.matches")) &&
		       json_object_array_length(jget(j, "manifest.mismatches")) == 0,
	       "gpt + matching manifest --json: present, matches, no mismatches");
	json_object_put(j);
	j = NULL;

	/* One wrong partition UUID. */
	json_object_object_add(json_object_array_get_idx(jget(man, "partitions"), 1), "uuid",
			       json_object_new_string("0f3e1c2a-2222-4a5b-8c9d-0000000000ff"));
	write_json(gman, man);
	inspect(&res, gimg, NULL);
	tap_is_int(res.status, 1, "gpt + wrong uuid: exit 1");
	tap_contains(res.out,
		     "\n  partition 2: uuid differs: manifest '0f3e1c2a-2222-4a5b-8c9d-0000000000ff', image '" ROOT_UUID
		     "'\n",
		     "gpt + wrong uuid: the field and both values are named");
	tap_contains(res.out, "\n  partition 1: match\n", "gpt + wrong uuid: partition 1 still matches");
	tap_contains(res.out, "\nmanifest: 1 mismatch\n", "gpt + wrong uuid: one mismatch");
	inspect(&res, gimg, "--json");
	j = jparse(res.out);
	tap_ok(j && res.status == 1 && !json_object_get_boolean(jget(j, "manifest.matches")),
	       "gpt + wrong uuid --json: exit 1, matches false");
	tap_is_int(json_object_array_length(jget(j, "manifest.mismatches")), 1, "gpt + wrong uuid --json: one mismatch");
	tap_is_str(jstr_at(j, "manifest.mismatches.0.field"), "uuid", "gpt + wrong uuid --json: field");
	tap_is_int(jint_at(j, "manifest.mismatches.0.partition"), 2, "gpt + wrong uuid --json: partition");
	tap_is_str(jstr_at(j, "manifest.mismatches.0.image"), ROOT_UUID, "gpt + wrong uuid --json: image value");
	json_object_put(j);
	j = NULL;

	/* Wrong start and size of partition 1, and a label the image does not have. */
	p1 = json_object_array_get_idx(jget(man, "partitions"), 0);
	json_object_object_add(p1, "start", json_object_new_int64(2 * MiB));
	json_object_object_add(p1, "label", json_object_new_string("EFI"));
	p3 = json_object_new_object();
	json_object_object_add(p3, "number", json_object_new_int(3));
	json_object_object_add(p3, "fs", json_object_new_string("none"));
	json_object_object_add(p3, "fs_uuid", json_object_new_string(""));
	json_object_array_add(jget(man, "partitions"), p3);
	write_json(gman, man);
	inspect(&res, gimg, NULL);
	tap_contains(res.out, "\n  partition 3: missing from the image\n", "gpt + extra manifest partition: missing");
	tap_contains(res.out, "partition 1: start differs: manifest '2097152', image '1048576'",
		     "gpt + wrong start: named with both values");
	tap_contains(res.out, "partition 1: label differs: manifest 'EFI', image 'ESP'", "gpt + wrong label: named");
	tap_contains(res.out, "\nmanifest: 4 mismatches\n", "gpt + four mismatches: counted");
	json_object_put(man);

	/* Not JSON at all. */
	write_file_atomic(gman, "{\"table\": ", 10, 0644);
	inspect(&res, gimg, NULL);
	tap_ok(res.status == 1 && strstr(res.err, "invalid JSON in manifest '") && strstr(res.err, gman),
	       "gpt + broken manifest: exit 1, names the manifest");
	unlink(gman);

	/* MBR, as the Raspberry Pi wants it: sfdisk reads its script on stdin. */
	if (!tap_ok(make_mbr_image(mimg) == 0, "build an MBR image with sfdisk, mkfs.vfat and mke2fs"))
		goto out;
	inspect(&res, mimg, NULL);
	tap_is_int(res.status, 0, "mbr: exit 0");
	tap_contains(res.out, "\ntable: mbr\n", "mbr: table type");
	tap_contains(res.out, "\ndisk id: 0x12345678\n", "mbr: disk id");
	tap_is_str(field(res.out, 1, "type"), "0x0c (firmware)", "mbr p1: type byte and name");
	tap_is_str(field(res.out, 1, "uuid"), "12345678-01", "mbr p1: partition id");
	tap_is_str(field(res.out, 1, "start"), "1048576 (1.0 MiB)", "mbr p1: start");
	tap_is_str(field(res.out, 1, "fs uuid"), "0BAD-F00D", "mbr p1: FAT serial");
	tap_is_str(field(res.out, 1, "label"), "BOOT", "mbr p1: label");
	tap_is_str(field(res.out, 2, "type"), "0x83 (linux)", "mbr p2: type byte and name");
	tap_is_str(field(res.out, 2, "label"), "rootfs", "mbr p2: label");
	tap_is_str(field(res.out, 2, "fs uuid"), MBR_ROOT_FS_UUID, "mbr p2: ext4 UUID");
	tap_ok(field(res.out, 1, "name") == NULL, "mbr p1: no partition name");
	inspect(&res, mimg, "--json");
	j = jparse(res.out);
	tap_is_int(jint_at(j, "partitions.0.mbr_type"), 0x0c, "mbr --json: mbr_type is the number 12");
	tap_is_str(jstr_at(j, "table.disk_id"), "0x12345678", "mbr --json: disk_id");
	json_object_put(j);
	j = NULL;
	man = load_fixture("manifest-mbr.json");
	if (tap_ok(man != NULL, "load fixture manifest-mbr.json")) {
		write_json(mman, man);
		inspect(&res, mimg, NULL);
		tap_is_int(res.status, 0, "mbr + matching manifest: exit 0");
		tap_contains(res.out, "\nmanifest: matches\n",
			     "mbr + matching manifest (with the build's type_guid and disk_guid, a FAT label in "
			     "another case): matches");
		json_object_object_add(json_object_array_get_idx(jget(man, "partitions"), 0), "mbr_type",
				       json_object_new_string("0x83"));
		write_json(mman, man);
		inspect(&res, mimg, NULL);
		tap_is_int(res.status, 1, "mbr + wrong type byte: exit 1");
		tap_contains(res.out, "partition 1: mbr_type differs: manifest '0x83', image '0x0c'",
			     "mbr + wrong type byte: named with both values");
		json_object_put(man);
	}

	/* Broken and hostile inputs: clear errors, never a crash. */
	make_sparse(zimg, 4 * MiB);
	inspect(&res, zimg, NULL);
	tap_is_int(res.status, 1, "no table: exit 1");
	tap_contains(res.err, "no partition table found in '", "no table: said so");
	tap_contains(res.err, zimg, "no table: names the file");

	/* A qcow2 (the build's output "qcow2"): refused by name, not "no partition table". */
	{
		_cleanup_free_ char *qimg = path_in("%s/bad/%s", "disk.qcow2");
		char *qargv[] = { "qemu-img", "create", "-q", "-f", "qcow2", qimg, "64M", NULL };
		struct run_opts qo = { 0 };
		if (qimg && run_argv(qargv, &qo) == 0) {
			inspect(&res, qimg, NULL);
			tap_is_int(res.status, 1, "qcow2: exit 1");
			tap_contains(res.err, "it is a qcow2 image, and inspect reads raw images", "qcow2: said so");
		} else {
			tap_skip("qcow2: exit 1", "'qemu-img' cannot make a qcow2 here (package qemu-utils)");
			tap_skip("qcow2: said so", "'qemu-img' cannot make a qcow2 here (package qemu-utils)");
		}
	}

	copy_file(gimg, tg, 32 * MiB);
	inspect(&res, tg, NULL);
	tap_is_int(res.status, 1, "truncated gpt: exit 1, no crash");
	tap_contains(res.err, "is truncated: its GPT describes a disk of 67108864 bytes",
		     "truncated gpt: flagged with the disk size the GPT wants");

	copy_file(mimg, tm, 40 * MiB);
	inspect(&res, tm, NULL);
	tap_is_int(res.status, 1, "truncated mbr: exit 1, no crash");
	tap_ok(field(res.out, 2, "problem") && strstr(field(res.out, 2, "problem"), "beyond end of image"),
	       "truncated mbr: partition 2 flagged beyond end of image");
	tap_ok(field(res.out, 1, "problem") == NULL, "truncated mbr: partition 1 not flagged");
	tap_is_str(field(res.out, 1, "fs"), "vfat", "truncated mbr: partition 1 still probed");
	inspect(&res, tm, "--json");
	j = jparse(res.out);
	tap_ok(j && json_object_get_boolean(jget(j, "partitions.1.beyond_end")) &&
		       json_object_array_length(jget(j, "problems")) == 1,
	       "truncated mbr --json: beyond_end and one problem");
	json_object_put(j);
	j = NULL;

	copy_file(gimg, hg, 64 * MiB);
	/* Only the primary header lies: libblkid falls back to the backup at the end. */
	tap_ok(patch_gpt_header(hg, 1, 0x7fffffff) == 0, "patch the primary GPT header");
	inspect(&res, hg, NULL);
	tap_ok(res.status == 0 && strstr(res.out, "\npartitions: 2\n"),
	       "gpt with a hostile primary header: read from the backup header");
	/* Both lie. */
	tap_ok(patch_gpt_header(hg, 64 * MiB / 512 - 1, 0x7fffffff) == 0, "patch the backup GPT header");
	inspect(&res, hg, NULL);
	tap_is_int(res.status, 1, "gpt claiming 2^31 entries: exit 1, no crash");
	tap_contains(res.err, "invalid GPT header", "gpt claiming 2^31 entries: said so");

	/* A third GPT entry over partition 2: both flagged. */
	{
		_cleanup_free_ char *ov = path_in("%s/bad/%s", "overlap.img"), *pe = path_in("%s/bad/%s", "past-end.img");
		copy_file(gimg, ov, 64 * MiB);
		tap_ok(set_gpt_entry(ov, 2, P2_START / 512 + 2048, P2_START / 512 + 4095) == 0,
		       "a GPT entry 3 inside partition 2");
		inspect(&res, ov, NULL);
		tap_is_int(res.status, 1, "overlapping partitions: exit 1");
		tap_ok(field(res.out, 3, "problem") && STREQ(field(res.out, 3, "problem"), "overlaps partition 2") &&
			       field(res.out, 2, "problem") && STREQ(field(res.out, 2, "problem"), "overlaps partition 3"),
		       "overlapping partitions: each flagged with the other");
		tap_contains(res.out, "\nproblems: 2 partitions overlap another\n", "overlapping partitions: counted");
		inspect(&res, ov, "--json");
		j = jparse(res.out);
		tap_ok(j && jint_at(j, "partitions.2.overlaps") == 2 &&
			       json_object_array_length(jget(j, "problems")) == 2 &&
			       STREQ(jstr_at(j, "problems.1") ? jstr_at(j, "problems.1") : "", "partition 3: overlaps partition 2"),
		       "overlapping partitions --json: overlaps and problems");
		json_object_put(j);
		j = NULL;

		/* Past the end of the disk: libblkid drops the entry without a word. */
		copy_file(gimg, pe, 64 * MiB);
		tap_ok(set_gpt_entry(pe, 2, 200000, 200999) == 0, "a GPT entry 3 past the end of the disk");
		inspect(&res, pe, NULL);
		tap_is_int(res.status, 1, "GPT entry past the end: exit 1");
		tap_contains(res.out, "\npartitions: 2\n", "GPT entry past the end: not a partition libblkid lists");
		if (!tap_ok(strstr(res.out, "\nproblems: GPT entry 3 (sectors 200000-200999) lies outside the usable "
					    "sectors 34-") &&
				    strstr(res.out, ", past the end of the image: libblkid and Linux ignore it\n"),
			    "GPT entry past the end: reported"))
			tap_diag("%s", res.out);
		inspect(&res, pe, "--json");
		j = jparse(res.out);
		tap_ok(j && jint_at(j, "ignored_entries.0.number") == 3 && jint_at(j, "ignored_entries.0.first_lba") == 200000 &&
			       json_object_get_boolean(jget(j, "ignored_entries.0.beyond_end")) &&
			       json_object_array_length(jget(j, "problems")) == 1,
		       "GPT entry past the end --json: in ignored_entries and problems");
		json_object_put(j);
		j = NULL;
	}

	inspect(&res, missing, NULL);
	tap_is_int(res.status, 3, "missing image: exit 3");
	tap_contains(res.err, missing, "missing image: error names it");

	inspect(&res, bdir, NULL);
	tap_is_int(res.status, 1, "a directory: exit 1");
	tap_contains(res.err, "is not a regular file or block device", "a directory: said so");

	/* manifest.json beside the image as a FIFO (no writer), a directory, a device, a symlink,
	 * a huge sparse file: refused at once. A FIFO once blocked inspect forever: the alarm
	 * kills a hanging inspect, which then fails its test. */
	{
		static const char *const kinds[] = { "fifo", "directory", "device", "symlink", "huge" };
		for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
			rm_rf(gman);
			int ok = 0;
			if (k == 0)
				ok = mkfifo(gman, 0644) == 0;
			else if (k == 1)
				ok = mkdir(gman, 0755) == 0;
			else if (k == 2)
				ok = mknod(gman, S_IFCHR | 0644, makedev(1, 5)) == 0 || symlink("/dev/zero", gman) == 0;
			else if (k == 3)
				ok = symlink("/dev/zero", gman) == 0;
			else {
				int fd = open(gman, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
				ok = fd >= 0 && ftruncate(fd, (off_t)1 << 40) == 0;
				if (fd >= 0)
					close(fd);
			}
			tap_ok(ok, "manifest.json as a %s", kinds[k]);
			signal(SIGALRM, kill_child);
			alarm(20);
			inspect(&res, gimg, NULL);
			alarm(0);
			if (!tap_ok(res.status == 1 && strstr(res.err, gman) &&
					    strstr(res.err, k == 4 ? "is larger than" : "is not a regular file"),
				    "manifest.json as a %s: exit 1 at once, said so (exit %d)", kinds[k], res.status))
				tap_diag("stderr: %s", res.err);
		}
		rm_rf(gman);
	}

	inspect(&res, NULL, NULL);
	tap_is_int(res.status, 2, "no IMAGE: usage error");
	inspect(&res, "--frobnicate", gimg);
	tap_is_int(res.status, 2, "unknown option: usage error");
	inspect(&res, gimg, gimg);
	tap_is_int(res.status, 2, "two images: usage error");
	inspect(&res, "--help", NULL);
	tap_ok(res.status == 0 && strstr(res.out, "usage: pmoves-image inspect IMAGE [--json]"), "--help: exit 0, usage");

out:
	result_clear(&res);
	json_object_put(j);
	if (tmpdir[0] && !getenv("PMOVES_KEEP_TMP"))
		rm_rf(tmpdir);
	free(pmimage);
	free(fixtures);
	return tap_done();
}
