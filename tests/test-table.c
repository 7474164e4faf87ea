/* GPT and MBR tables written by table-gpt.c / table-mbr.c, checked by the real tools: sfdisk,
 * sgdisk and libblkid, plus the bytes the tools do not look at (CHS, untouched sectors). */
#include "tap.h"
#include "hash.h"
#include "run.h"
#include "mbr.h"
#include "table.h"
#include "util.h"

#include <blkid.h>
#include <ctype.h>
#include <endian.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <sys/stat.h>

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

static char tmpdir[] = "/tmp/pmoves-test-table-XXXXXX";
static bool have_sgdisk;

struct test_layout {
	struct table_layout l;
	struct table_entry e[130];
	char names[130][40];
};

/* Diagnostics gathered while checking one thing, so each check is one TAP line. */
static int errs;
#define CHECK(cond, ...)                           \
	do {                                       \
		if (!(cond) && errs++ < 6)         \
			tap_diag(__VA_ARGS__);     \
	} while (0)

static char *img_path(const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", tmpdir, name) < 0)
		abort();
	return p;
}

/* A sparse image of SIZE bytes; returns an O_RDWR fd. */
static int img_create(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

static void upper(char *s)
{
	for (; *s; s++)
		*s = (char)toupper((unsigned char)*s);
}

static void guid_text(const uint8_t g[16], bool up, char out[37])
{
	uuid_format(g, out);
	if (up)
		upper(out);
}

/* N partitions of PART_SIZE each from 1 MiB on, with a few types, one bootable, and one name
 * of the full 36 characters. */
static void layout_make(struct test_layout *t, const char *tag, uint64_t disk_size, unsigned n,
			uint64_t part_size, uint64_t first_start)
{
	static const char *types[] = { "esp", "root", "swap", "home", "linux", "firmware" };
	memset(t, 0, sizeof(*t));
	t->l.disk_size = disk_size;
	if (uuid_derive(tag, "disk", t->l.disk_guid) < 0 || u32_derive(tag, "disk-id", &t->l.disk_id) < 0)
		abort();
	t->l.n = n;
	t->l.e = t->e;
	uint64_t start = first_start;
	for (unsigned i = 0; i < n; i++) {
		struct table_entry *e = &t->e[i];
		const struct part_type *pt = part_type_find(types[i % ARRAY_SIZE(types)]);
		char purpose[32];
		snprintf(purpose, sizeof(purpose), "part-%u", i);
		e->start = start;
		e->size = part_size;
		start += part_size;
		uuid_parse(part_type_guid(pt, arch_find("x86_64")), e->type_guid);
		if (uuid_derive(tag, purpose, e->uuid) < 0)
			abort();
		e->mbr_type = pt->mbr;
		e->bootable = i == 0;
		if (i == 1)
			snprintf(t->names[i], sizeof(t->names[i]), "%s", "abcdefghijklmnopqrstuvwxyz0123456789");
		else
			snprintf(t->names[i], sizeof(t->names[i]), "%s-%u", pt->name, i + 1);
		e->name = t->names[i];
	}
}

/* Run ARGV; stdout into *ret_out, stderr into *ret_err (both malloc'd). */
static int run_capture(char *const argv[], char **ret_out, char **ret_err)
{
	_cleanup_free_ char *errpath = img_path("stderr.txt");
	_cleanup_close_ int errfd = open(errpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (errfd < 0)
		return -errno;
	struct run_opts o = { .out_fd = errfd, .in_fd = -1, .capture = ret_out, .capture_max = 8u << 20 };
	*ret_out = NULL;
	int r = run_argv(argv, &o);
	size_t len;
	if (read_file(errpath, 1u << 20, ret_err, &len) < 0)
		*ret_err = strdup("");
	if (!*ret_out)
		*ret_out = strdup("");
	return r;
}

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v = jget(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v = jget(o, key);
	return v ? json_object_get_int64(v) : -1;
}

static void check_sfdisk_json(const char *path, const struct test_layout *t, bool gpt)
{
	char *argv[] = { "sfdisk", "--json", (char *)path, NULL };
	_cleanup_free_ char *out = NULL, *err = NULL;
	int r = run_capture(argv, &out, &err);
	errs = 0;
	CHECK(r == 0, "sfdisk --json exit %d: %s", r, err);
	json_object *root = json_tokener_parse(out);
	json_object *pt = jget(root, "partitiontable");
	CHECK(pt != NULL, "no partitiontable in '%s'", out);
	CHECK(STREQ(jstr(pt, "label"), gpt ? "gpt" : "dos"), "label '%s'", jstr(pt, "label"));
	char want[40];
	if (gpt) {
		guid_text(t->l.disk_guid, true, want);
		CHECK(STREQ(jstr(pt, "id"), want), "disk GUID '%s', want '%s'", jstr(pt, "id"), want);
		CHECK(jint(pt, "firstlba") == 34, "firstlba %lld", (long long)jint(pt, "firstlba"));
		int64_t last = (int64_t)(t->l.disk_size / SECTOR) - 34;
		CHECK(jint(pt, "lastlba") == last, "lastlba %lld, want %lld",
		      (long long)jint(pt, "lastlba"), (long long)last);
	} else {
		snprintf(want, sizeof(want), "0x%08x", t->l.disk_id);
		CHECK(STREQ(jstr(pt, "id"), want), "disk id '%s', want '%s'", jstr(pt, "id"), want);
	}
	json_object *parts = jget(pt, "partitions");
	size_t np = parts ? json_object_array_length(parts) : 0;
	CHECK(np == t->l.n, "%zu partitions, want %u", np, t->l.n);
	for (size_t i = 0; i < np && i < t->l.n; i++) {
		json_object *p = json_object_array_get_idx(parts, i);
		const struct table_entry *e = &t->e[i];
		CHECK(jint(p, "start") == (int64_t)(e->start / SECTOR), "p%zu start %lld", i + 1,
		      (long long)jint(p, "start"));
		CHECK(jint(p, "size") == (int64_t)(e->size / SECTOR), "p%zu size %lld", i + 1,
		      (long long)jint(p, "size"));
		if (gpt) {
			guid_text(e->type_guid, true, want);
			CHECK(STREQ(jstr(p, "type"), want), "p%zu type '%s' want '%s'", i + 1, jstr(p, "type"), want);
			guid_text(e->uuid, true, want);
			CHECK(STREQ(jstr(p, "uuid"), want), "p%zu uuid '%s' want '%s'", i + 1, jstr(p, "uuid"), want);
			CHECK(STREQ(jstr(p, "name"), e->name), "p%zu name '%s' want '%s'", i + 1, jstr(p, "name"), e->name);
			bool legacy = strstr(jstr(p, "attrs"), "LegacyBIOSBootable") != NULL;
			CHECK(legacy == e->bootable, "p%zu attrs '%s'", i + 1, jstr(p, "attrs"));
		} else {
			snprintf(want, sizeof(want), "%x", e->mbr_type);
			CHECK(STREQ(jstr(p, "type"), want), "p%zu type '%s' want '%s'", i + 1, jstr(p, "type"), want);
			json_object *b = jget(p, "bootable");
			bool boot = b && json_object_get_boolean(b);
			CHECK(boot == e->bootable, "p%zu bootable %d", i + 1, boot);
		}
	}
	json_object_put(root);
	tap_ok(errs == 0, "%s: sfdisk --json shows the layout", path + strlen(tmpdir) + 1);
}

static void check_sfdisk_verify(const char *path)
{
	char *argv[] = { "sfdisk", "--verify", (char *)path, NULL };
	_cleanup_free_ char *out = NULL, *err = NULL;
	int r = run_capture(argv, &out, &err);
	bool clean = r == 0 && strstr(out, "No errors detected") && !strcasestr(out, "warn") &&
		     !strcasestr(err, "warn") && !strcasestr(out, "mismatch") && err[0] == '\0';
	if (!tap_ok(clean, "%s: sfdisk --verify finds nothing", path + strlen(tmpdir) + 1))
		tap_diag("exit %d, stdout '%s', stderr '%s'", r, out, err);
}

static void check_sgdisk_verify(const char *path)
{
	const char *what = path + strlen(tmpdir) + 1;
	if (!have_sgdisk) {
		tap_skip("sgdisk --verify", "sgdisk not installed (package gdisk)");
		return;
	}
	char *argv[] = { "sgdisk", "--verify", (char *)path, NULL };
	_cleanup_free_ char *out = NULL, *err = NULL;
	int r = run_capture(argv, &out, &err);
	bool clean = r == 0 && strstr(out, "No problems found") && !strcasestr(out, "warning") &&
		     !strcasestr(out, "problem:");
	if (!tap_ok(clean, "%s: sgdisk --verify finds no problems", what))
		tap_diag("exit %d, stdout '%s', stderr '%s'", r, out, err);
}

static void check_blkid(const char *path, const struct test_layout *t, bool gpt)
{
	errs = 0;
	blkid_probe pr = blkid_new_probe_from_filename(path);
	CHECK(pr != NULL, "blkid cannot open '%s'", path);
	if (pr) {
		blkid_probe_enable_partitions(pr, 1);
		blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
		blkid_partlist ls = blkid_probe_get_partitions(pr);
		CHECK(ls != NULL, "blkid finds no partition table");
		blkid_parttable tab = ls ? blkid_partlist_get_table(ls) : NULL;
		const char *type = tab ? blkid_parttable_get_type(tab) : NULL;
		CHECK(type && STREQ(type, gpt ? "gpt" : "dos"), "table type '%s'", type ? type : "(null)");
		char want[40];
		if (gpt)
			guid_text(t->l.disk_guid, false, want);
		else
			snprintf(want, sizeof(want), "%08x", t->l.disk_id);
		const char *id = tab ? blkid_parttable_get_id(tab) : NULL;
		CHECK(id && STREQ(id, want), "table id '%s', want '%s'", id ? id : "(null)", want);
		int n = ls ? blkid_partlist_numof_partitions(ls) : -1;
		CHECK(n == (int)t->l.n, "%d partitions, want %u", n, t->l.n);
		for (int i = 0; i < n && i < (int)t->l.n; i++) {
			blkid_partition p = blkid_partlist_get_partition(ls, i);
			const struct table_entry *e = &t->e[i];
			CHECK(blkid_partition_get_partno(p) == i + 1, "p%d number %d", i + 1, blkid_partition_get_partno(p));
			CHECK((uint64_t)blkid_partition_get_start(p) == e->start / SECTOR, "p%d start %lld", i + 1,
			      (long long)blkid_partition_get_start(p));
			CHECK((uint64_t)blkid_partition_get_size(p) == e->size / SECTOR, "p%d size %lld", i + 1,
			      (long long)blkid_partition_get_size(p));
			if (gpt) {
				const char *s = blkid_partition_get_type_string(p);
				guid_text(e->type_guid, false, want);
				CHECK(s && STREQ(s, want), "p%d type '%s' want '%s'", i + 1, s ? s : "(null)", want);
				s = blkid_partition_get_uuid(p);
				guid_text(e->uuid, false, want);
				CHECK(s && STREQ(s, want), "p%d uuid '%s' want '%s'", i + 1, s ? s : "(null)", want);
				s = blkid_partition_get_name(p);
				CHECK(s && STREQ(s, e->name), "p%d name '%s' want '%s'", i + 1, s ? s : "(null)", e->name);
				unsigned long long fl = blkid_partition_get_flags(p);
				CHECK(((fl & 4) != 0) == e->bootable, "p%d attributes %#llx", i + 1, fl);
			} else {
				CHECK(blkid_partition_get_type(p) == e->mbr_type, "p%d type %#x", i + 1,
				      blkid_partition_get_type(p));
				unsigned long long fl = blkid_partition_get_flags(p);
				CHECK((fl == 0x80) == e->bootable, "p%d flags %#llx", i + 1, fl);
			}
		}
		blkid_free_probe(pr);
	}
	tap_ok(errs == 0, "%s: libblkid reads the layout", path + strlen(tmpdir) + 1);
}

/* Allocated bytes of a file. */
static uint64_t allocated(int fd)
{
	struct stat st;
	return fstat(fd, &st) < 0 ? UINT64_MAX : (uint64_t)st.st_blocks * 512;
}

static void check_gpt_layout(const char *name, const struct test_layout *t)
{
	_cleanup_free_ char *path = img_path(name);
	_cleanup_close_ int fd = img_create(path, t->l.disk_size);
	int r = table_gpt.write(fd, &t->l);
	tap_is_int(r, 0, "%s: table_gpt.write with %u partitions", name, t->l.n);
	/* PMBR, header + array at each end: a few tens of KiB whatever the disk size. */
	uint64_t a = allocated(fd);
	if (!tap_ok(a <= 128 * 1024, "%s: only the table's sectors are allocated", name))
		tap_diag("%llu bytes allocated", (unsigned long long)a);
	check_sfdisk_json(path, t, true);
	check_sfdisk_verify(path);
	check_sgdisk_verify(path);
	check_blkid(path, t, true);

	struct gpt_disk d;
	r = gpt_read(fd, &d);
	errs = 0;
	CHECK(r == 0, "gpt_read: %d", r);
	if (r == 0) {
		CHECK(memcmp(d.disk_guid, t->l.disk_guid, 16) == 0, "disk GUID differs");
		CHECK(d.first_usable_lba == 34, "first usable %llu", (unsigned long long)d.first_usable_lba);
		CHECK(d.last_usable_lba == t->l.disk_size / SECTOR - 34, "last usable %llu",
		      (unsigned long long)d.last_usable_lba);
		CHECK(d.alternate_lba == t->l.disk_size / SECTOR - 1, "alternate %llu",
		      (unsigned long long)d.alternate_lba);
		CHECK(d.num_entries == 128, "%u slots", d.num_entries);
		CHECK(d.n == t->l.n, "%u partitions", d.n);
		for (unsigned i = 0; i < d.n && i < t->l.n; i++) {
			const struct gpt_part *p = &d.part[i];
			const struct table_entry *e = &t->e[i];
			CHECK(p->number == i + 1, "p%u number %u", i + 1, p->number);
			CHECK(p->start == e->start && p->size == e->size, "p%u extent", i + 1);
			CHECK(memcmp(p->type_guid, e->type_guid, 16) == 0, "p%u type", i + 1);
			CHECK(memcmp(p->uuid, e->uuid, 16) == 0, "p%u uuid", i + 1);
			CHECK(STREQ(p->name, e->name), "p%u name '%s'", i + 1, p->name);
			CHECK(p->attributes == (e->bootable ? 4u : 0u), "p%u attributes", i + 1);
		}
	}
	tap_ok(errs == 0, "%s: gpt_read gives back what was written", name);
}

static void check_mbr_layout(const char *name, const struct test_layout *t)
{
	_cleanup_free_ char *path = img_path(name);
	_cleanup_close_ int fd = img_create(path, t->l.disk_size);
	int r = table_mbr.write(fd, &t->l);
	tap_is_int(r, 0, "%s: table_mbr.write with %u partitions", name, t->l.n);
	check_sfdisk_json(path, t, false);
	check_sfdisk_verify(path);
	check_blkid(path, t, false);
	/* The CHS bytes nobody else checks: recompute them by the textbook formula. */
	uint8_t s0[512];
	errs = 0;
	CHECK(pread(fd, s0, 512, 0) == 512, "cannot read LBA 0");
	CHECK(s0[510] == 0x55 && s0[511] == 0xaa, "no 0x55AA");
	for (unsigned i = 0; i < t->l.n; i++) {
		const uint8_t *rec = s0 + 446 + 16 * i;
		uint64_t lbas[2] = { t->e[i].start / 512, (t->e[i].start + t->e[i].size) / 512 - 1 };
		for (int k = 0; k < 2; k++) {
			uint64_t c = lbas[k] / (255 * 63), h = lbas[k] / 63 % 255, s = lbas[k] % 63 + 1;
			if (c > 1023)
				c = 1023, h = 254, s = 63;
			const uint8_t *chs = rec + (k ? 5 : 1);
			unsigned gc = chs[2] | ((unsigned)(chs[1] & 0xc0) << 2), gh = chs[0], gs = chs[1] & 0x3f;
			CHECK(gc == c && gh == h && gs == s, "p%u %s CHS %u/%u/%u, want %llu/%llu/%llu", i + 1,
			      k ? "last" : "first", gc, gh, gs, (unsigned long long)c, (unsigned long long)h,
			      (unsigned long long)s);
		}
	}
	tap_ok(errs == 0, "%s: CHS fields and boot signature", name);
}

/* Every byte of the file is zero and nothing is allocated. */
static bool all_zero(int fd, uint64_t size)
{
	static uint8_t buf[1 << 16];
	if (allocated(fd) != 0)
		return false;
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		if (pread(fd, buf, n, (off_t)off) != (ssize_t)n)
			return false;
		for (size_t i = 0; i < n; i++)
			if (buf[i])
				return false;
	}
	return true;
}

static void check_invalid(const struct table_type *tt, const char *what, const struct test_layout *t)
{
	_cleanup_free_ char *path = img_path("invalid.img");
	uint64_t size = t->l.disk_size <= 64 * MiB ? t->l.disk_size : 64 * MiB;
	_cleanup_close_ int fd = img_create(path, size);
	int r = tt->write(fd, &t->l);
	bool untouched = all_zero(fd, size);
	if (!tap_ok(r == -EINVAL && untouched, "%s: %s is refused (-EINVAL), file untouched", tt->name, what))
		tap_diag("returned %d, file %s", r, untouched ? "untouched" : "CHANGED");
}

static void test_invalid(void)
{
	static struct test_layout t;
	const uint64_t D = 64 * MiB;

#define GPT_BAD(what, ...)                                       \
	do {                                                     \
		layout_make(&t, "bad", D, 3, 8 * MiB, MiB);      \
		__VA_ARGS__;                                     \
		check_invalid(&table_gpt, what, &t);             \
	} while (0)
	GPT_BAD("unsorted entries", { struct table_entry x = t.e[0]; t.e[0] = t.e[1]; t.e[1] = x; });
	GPT_BAD("overlapping entries", t.e[1].start -= 512);
	GPT_BAD("a start before LBA 34", t.e[0].start = 33 * 512);
	GPT_BAD("an end one sector past the last usable LBA", t.e[2].size = D - t.e[2].start - 32 * 512);
	GPT_BAD("a start that is not a sector multiple", t.e[0].start += 1);
	GPT_BAD("a size that is not a sector multiple", t.e[2].size -= 100);
	GPT_BAD("an empty partition", t.e[2].size = 0);
	GPT_BAD("a disk size that is not a sector multiple", t.l.disk_size += 1);
	GPT_BAD("a disk too small for two tables", { t.l.disk_size = 67 * 512; t.l.n = 0; });
	GPT_BAD("a 37-character name", t.e[0].name = "abcdefghijklmnopqrstuvwxyz01234567890");
	GPT_BAD("a non-ASCII name", t.e[0].name = "r\xc3\xa9sum\xc3\xa9");
	GPT_BAD("a null type GUID", memset(t.e[1].type_guid, 0, 16));
	GPT_BAD("a duplicate partition GUID", memcpy(t.e[2].uuid, t.e[0].uuid, 16));
	GPT_BAD("a null disk GUID", memset(t.l.disk_guid, 0, 16));
	GPT_BAD("a size that overflows", t.e[2].size = UINT64_MAX - 511);
	layout_make(&t, "bad", 256 * MiB, 129, MiB, MiB);
	check_invalid(&table_gpt, "129 partitions", &t);

#define MBR_BAD(what, ...)                                       \
	do {                                                     \
		layout_make(&t, "bad", D, 3, 8 * MiB, MiB);      \
		__VA_ARGS__;                                     \
		check_invalid(&table_mbr, what, &t);             \
	} while (0)
	MBR_BAD("five partitions", { layout_make(&t, "bad", D, 5, 8 * MiB, MiB); });
	MBR_BAD("a start at LBA 0", t.e[0].start = 0);
	MBR_BAD("overlapping entries", t.e[1].start -= 512);
	MBR_BAD("unsorted entries", { struct table_entry x = t.e[0]; t.e[0] = t.e[1]; t.e[1] = x; });
	MBR_BAD("an end past the disk", t.e[2].size = D - t.e[2].start + 512);
	MBR_BAD("a size that is not a sector multiple", t.e[1].size += 3);
	MBR_BAD("type 0 (empty)", t.e[1].mbr_type = 0);
	MBR_BAD("type 0xee (GPT protective)", t.e[1].mbr_type = 0xee);
	MBR_BAD("a disk of 2^32 sectors (beyond 32-bit LBAs)", t.l.disk_size = (UINT64_C(1) << 32) * 512);
}

/* The writers leave every byte outside their sectors alone (boot code included). */
static void test_touch_nothing_else(void)
{
	static struct test_layout t;
	const uint64_t D = 4 * MiB;
	static uint8_t buf[4 * 1024 * 1024];
	for (int gpt = 1; gpt >= 0; gpt--) {
		_cleanup_free_ char *path = img_path("pattern.img");
		_cleanup_close_ int fd = img_create(path, D);
		memset(buf, 0xa5, sizeof(buf));
		if (pwrite(fd, buf, D, 0) != (ssize_t)D)
			abort();
		layout_make(&t, "pattern", D, 2, MiB, MiB);
		int r = (gpt ? &table_gpt : &table_mbr)->write(fd, &t.l);
		if (pread(fd, buf, D, 0) != (ssize_t)D)
			abort();
		/* Bytes the table may own: LBA 0 from 440, LBA 1..33, the last 33 LBAs (GPT). */
		size_t bad = 0, first_bad = 0;
		for (size_t i = 0; i < D; i++) {
			bool owned = (i >= 440 && i < 512) ||
				     (gpt && ((i >= 512 && i < 34 * 512) || i >= D - 33 * 512));
			if (!owned && buf[i] != 0xa5 && bad++ == 0)
				first_bad = i;
		}
		if (!tap_ok(r == 0 && bad == 0, "%s: boot code and partition contents are left alone", gpt ? "gpt" : "mbr"))
			tap_diag("write %d, %zu bytes changed, first at %zu", r, bad, first_bad);
	}
}

static void test_pmbr(void)
{
	/* Protective MBR record for a small disk and for one past 2 TiB. */
	struct { uint64_t size; uint32_t want_size; uint8_t want_end[3]; } cases[] = {
		{ 64 * MiB, 131071, { 40, 32 | ((8 >> 2) & 0xc0), 8 } }, /* LBA 131071 = 8/40/32 */
		{ 3 * TiB, 0xffffffffu, { 0xff, 0xff, 0xff } },
	};
	static struct test_layout t;
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		_cleanup_free_ char *path = img_path("pmbr.img");
		_cleanup_close_ int fd = img_create(path, cases[c].size);
		layout_make(&t, "pmbr", cases[c].size, 1, MiB, MiB);
		int r = table_gpt.write(fd, &t.l);
		uint8_t s[512];
		errs = 0;
		CHECK(r == 0 && pread(fd, s, 512, 0) == 512, "write %d", r);
		const uint8_t *rec = s + 446;
		uint32_t lba, n;
		memcpy(&lba, rec + 8, 4);
		memcpy(&n, rec + 12, 4);
		CHECK(rec[0] == 0 && rec[1] == 0x00 && rec[2] == 0x02 && rec[3] == 0x00,
		      "status/start CHS %02x %02x %02x %02x", rec[0], rec[1], rec[2], rec[3]);
		CHECK(rec[4] == 0xee, "type %#x", rec[4]);
		CHECK(memcmp(rec + 5, cases[c].want_end, 3) == 0, "end CHS %02x %02x %02x", rec[5], rec[6], rec[7]);
		CHECK(le32toh(lba) == 1 && le32toh(n) == cases[c].want_size, "LBA %u size %u", le32toh(lba), le32toh(n));
		static const uint8_t zero[48];
		CHECK(memcmp(s + 462, zero, 48) == 0, "other records not empty");
		CHECK(memcmp(s + 440, zero, 6) == 0, "disk signature not zero");
		CHECK(s[510] == 0x55 && s[511] == 0xaa, "no 0x55AA");
		tap_ok(errs == 0, "protective MBR for a %llu MiB disk", (unsigned long long)(cases[c].size / MiB));
	}
}

static void test_chs(void)
{
	struct { uint64_t lba; uint8_t chs[3]; bool exact; } cases[] = {
		{ 0, { 0, 1, 0 }, true },
		{ 1, { 0, 2, 0 }, true },
		{ 2048, { 32, 33, 0 }, true },               /* the usual first partition */
		{ 526335, { 194, 34 | ((32 >> 2) & 0xc0), 32 }, true },
		{ 1024 * 16065 - 1, { 254, 63 | 0xc0, 0xff }, true }, /* the last exact address */
		{ 1024 * 16065, { 254, 63 | 0xc0, 0xff }, false },    /* saturates like fdisk */
		{ UINT64_C(1) << 40, { 254, 63 | 0xc0, 0xff }, false },
	};
	errs = 0;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t got[3];
		bool exact = mbr_lba_chs(cases[i].lba, got);
		CHECK(memcmp(got, cases[i].chs, 3) == 0 && exact == cases[i].exact,
		      "LBA %llu: %02x %02x %02x %d", (unsigned long long)cases[i].lba, got[0], got[1], got[2], exact);
	}
	tap_ok(errs == 0, "mbr_lba_chs: 255 heads, 63 sectors, saturating at 1023/254/63");
}

static void test_relocate(void)
{
	static struct test_layout t;
	_cleanup_free_ char *path = img_path("grow.img");
	_cleanup_close_ int fd = img_create(path, 64 * MiB);
	layout_make(&t, "grow", 64 * MiB, 2, 16 * MiB, MiB);
	tap_is_int(table_gpt.write(fd, &t.l), 0, "grow: GPT written for 64 MiB");
	if (ftruncate(fd, 128 * MiB) < 0)
		abort();
	if (have_sgdisk) {
		char *argv[] = { "sgdisk", "--verify", path, NULL };
		_cleanup_free_ char *out = NULL, *err = NULL;
		run_capture(argv, &out, &err);
		if (!tap_ok(strstr(out, "No problems found") == NULL, "grow: sgdisk --verify sees the misplaced backup before relocation"))
			tap_diag("stdout '%s'", out);
	} else
		tap_skip("grow: sgdisk sees the misplaced backup", "sgdisk not installed");

	int r = gpt_relocate_backup(fd, 128 * MiB);
	tap_is_int(r, 0, "grow: gpt_relocate_backup to 128 MiB");
	check_sgdisk_verify(path);
	check_sfdisk_verify(path);
	/* The same partitions, on a 128 MiB disk. */
	t.l.disk_size = 128 * MiB;
	check_sfdisk_json(path, &t, true);
	check_blkid(path, &t, true);

	struct gpt_disk d;
	r = gpt_read(fd, &d);
	errs = 0;
	CHECK(r == 0, "gpt_read %d", r);
	CHECK(d.alternate_lba == 128 * MiB / 512 - 1, "alternate %llu", (unsigned long long)d.alternate_lba);
	CHECK(d.last_usable_lba == 128 * MiB / 512 - 34, "last usable %llu", (unsigned long long)d.last_usable_lba);
	CHECK(d.n == 2 && d.part[1].start == t.e[1].start && d.part[1].size == t.e[1].size, "partitions changed");
	uint8_t old[512];
	CHECK(pread(fd, old, 512, 64 * MiB - 512) == 512 && memcmp(old, "EFI PART", 8) != 0,
	      "old backup header still there");
	uint32_t pmbr_size;
	CHECK(pread(fd, &pmbr_size, 4, 446 + 12) == 4 && le32toh(pmbr_size) == 128 * MiB / 512 - 1,
	      "protective MBR size %u", le32toh(pmbr_size));
	tap_ok(errs == 0, "grow: new end in the headers, old backup header wiped, PMBR resized");

	/* Running it again is a no-op (the first boot may be interrupted and rerun). */
	uint8_t before[34 * 512], after[34 * 512];
	bool same = pread(fd, before, sizeof(before), 0) == (ssize_t)sizeof(before);
	r = gpt_relocate_backup(fd, 128 * MiB);
	same = same && pread(fd, after, sizeof(after), 0) == (ssize_t)sizeof(after) &&
	       memcmp(before, after, sizeof(before)) == 0;
	tap_ok(r == 0 && same, "grow: a second relocation changes nothing");

	/* Shrinking below a partition is refused. */
	r = gpt_relocate_backup(fd, 16 * MiB);
	tap_is_int(r, -EINVAL, "grow: a size that would cut a partition is refused");
	tap_is_int(gpt_relocate_backup(fd, 128 * MiB + 100), -EINVAL, "grow: a size that is not a sector multiple is refused");

	/* Then the root partition takes the new space. */
	uint64_t fill = (d.last_usable_lba + 1) * SECTOR - t.e[1].start;
	tap_is_int(gpt_resize_partition(fd, 1, t.e[0].size + 512), -EINVAL, "grow: resizing over the next partition is refused");
	tap_is_int(gpt_resize_partition(fd, 2, fill + 512), -EINVAL, "grow: resizing past the last usable LBA is refused");
	tap_is_int(gpt_resize_partition(fd, 3, MiB), -ENOENT, "grow: resizing an unused slot is -ENOENT");
	tap_is_int(gpt_resize_partition(fd, 129, MiB), -EINVAL, "grow: resizing slot 129 of 128 is refused");
	tap_is_int(gpt_resize_partition(fd, 2, fill - 100), -EINVAL, "grow: a size that is not a sector multiple is refused");
	tap_is_int(gpt_resize_partition(fd, 2, fill), 0, "grow: partition 2 resized to fill the disk");
	t.e[1].size = fill;
	check_sgdisk_verify(path);
	check_sfdisk_verify(path);
	check_sfdisk_json(path, &t, true);
	check_blkid(path, &t, true);
	r = gpt_read(fd, &d);
	tap_ok(r == 0 && d.n == 2 && d.part[1].size == fill && d.part[0].size == t.e[0].size &&
	       STREQ(d.part[1].name, t.e[1].name), "grow: gpt_read shows the new size");
	same = pread(fd, before, sizeof(before), 0) == (ssize_t)sizeof(before);
	r = gpt_resize_partition(fd, 2, fill);
	same = same && pread(fd, after, sizeof(after), 0) == (ssize_t)sizeof(after) &&
	       memcmp(before, after, sizeof(before)) == 0;
	tap_ok(r == 0 && same, "grow: resizing again to the same size changes nothing");
	/* A damaged backup stops it: both copies must be good before one is changed. */
	uint8_t z[8] = { 0 };
	if (pwrite(fd, z, 8, 128 * MiB - 512) != 8)
		abort();
	tap_is_int(gpt_resize_partition(fd, 2, fill - MiB), -ENXIO, "grow: resizing with a missing backup header is refused");
}

static void test_read_errors(void)
{
	_cleanup_free_ char *path = img_path("read.img");
	_cleanup_close_ int fd = img_create(path, 8 * MiB);
	struct gpt_disk d;
	tap_is_int(gpt_read(fd, &d), -ENXIO, "gpt_read: an empty disk has no GPT (-ENXIO)");
	static struct test_layout t;
	layout_make(&t, "read", 8 * MiB, 2, MiB, MiB);
	if (table_gpt.write(fd, &t.l) < 0)
		abort();
	uint8_t b;
	/* Flip one byte of the first entry's name: the array CRC no longer matches. */
	if (pread(fd, &b, 1, 2 * 512 + 56) != 1)
		abort();
	b ^= 0x01;
	if (pwrite(fd, &b, 1, 2 * 512 + 56) != 1)
		abort();
	tap_is_int(gpt_read(fd, &d), -EBADMSG, "gpt_read: a damaged entry array is -EBADMSG");
	tap_is_int(gpt_relocate_backup(fd, 16 * MiB), -EBADMSG, "gpt_relocate_backup: refuses a damaged table");
	b ^= 0x01;
	if (pwrite(fd, &b, 1, 2 * 512 + 56) != 1)
		abort();
	/* And a damaged header. */
	if (pread(fd, &b, 1, 512 + 40) != 1)
		abort();
	b ^= 0x80;
	if (pwrite(fd, &b, 1, 512 + 40) != 1)
		abort();
	tap_is_int(gpt_read(fd, &d), -EBADMSG, "gpt_read: a damaged header is -EBADMSG");
}

/* sfdisk --dump of fixed layouts against stored expectations (the image path reads IMG). */
static void test_golden(const char *file, const struct table_type *tt, const struct test_layout *t)
{
	const char *src = getenv("PMOVES_SRCDIR") ? getenv("PMOVES_SRCDIR") : ".";
	_cleanup_free_ char *golden = NULL, *path = img_path("IMG");
	if (asprintf(&golden, "%s/tests/fixtures/table/%s", src, file) < 0)
		abort();
	_cleanup_close_ int fd = img_create(path, t->l.disk_size);
	int r = tt->write(fd, &t->l);
	char *argv[] = { "sfdisk", "--dump", path, NULL };
	_cleanup_free_ char *out = NULL, *err = NULL;
	int rr = run_capture(argv, &out, &err);
	/* Replace the temp dir prefix so the output is the same everywhere. */
	size_t pl = strlen(tmpdir) + 1;
	for (char *p; (p = strstr(out, tmpdir));)
		memmove(p, p + pl, strlen(p + pl) + 1);
	if (getenv("PMOVES_UPDATE_GOLDEN"))
		write_file_atomic(golden, out, strlen(out), 0644);
	_cleanup_free_ char *want = NULL;
	size_t len;
	if (read_file(golden, 1 << 20, &want, &len) < 0) {
		tap_skip(file, "golden file not found (run from the source tree or set PMOVES_SRCDIR)");
		return;
	}
	if (!tap_ok(r == 0 && rr == 0 && STREQ(out, want), "sfdisk --dump matches %s", file))
		tap_diag("write %d, sfdisk %d, got:\n%s", r, rr, out);
}

int main(void)
{
	char *sf = NULL, *sg = NULL;
	if (find_program("sfdisk", &sf) < 0)
		tap_skip_all("sfdisk not installed (util-linux)");
	free(sf);
	have_sgdisk = find_program("sgdisk", &sg) >= 0;
	free(sg);
	if (!mkdtemp(tmpdir))
		tap_skip_all("cannot create a temp dir in /tmp");

	tap_is_int(crc32_ieee(0, "123456789", 9), 0xcbf43926u, "CRC-32 of '123456789' is 0xcbf43926");
	test_chs();

	static struct test_layout t;
	layout_make(&t, "gpt1", 64 * MiB, 1, 32 * MiB, MiB);
	check_gpt_layout("gpt1.img", &t);
	layout_make(&t, "gpt2", 512 * MiB, 2, 256 * MiB - MiB, MiB);
	t.e[1].size = 512 * MiB - t.e[1].start - 33 * 512; /* up to the last usable LBA */
	check_gpt_layout("gpt2.img", &t);
	layout_make(&t, "gpt4", GiB, 4, 128 * MiB, MiB);
	t.e[2].start += 7 * 512; /* not aligned, still legal */
	t.e[3].start += 64 * MiB;
	check_gpt_layout("gpt4.img", &t);
	layout_make(&t, "gpt128", 256 * MiB, 128, MiB, MiB);
	t.e[0].start = 34 * 512; /* the first usable LBA itself */
	t.e[0].size = MiB - 34 * 512;
	check_gpt_layout("gpt128.img", &t);
	layout_make(&t, "gpt3t", 3 * TiB, 3, 512 * GiB, MiB);
	t.e[2].size = 3 * TiB - t.e[2].start - 33 * 512; /* ends at the last usable LBA, past 2 TiB */
	check_gpt_layout("gpt-3TiB.img", &t);
	test_pmbr();

	for (unsigned n = 1; n <= 4; n++) {
		char tag[16], name[24];
		snprintf(tag, sizeof(tag), "mbr%u", n);
		snprintf(name, sizeof(name), "mbr%u.img", n);
		layout_make(&t, tag, 16 * GiB, n, 3 * GiB, 4 * MiB);
		t.e[0].bootable = n != 2; /* one layout without a bootable partition */
		if (n == 4)
			t.e[3].size = 16 * GiB - t.e[3].start; /* up to the last sector, past CHS range */
		check_mbr_layout(name, &t);
	}
	layout_make(&t, "mbr2t", (UINT64_C(0xffffffff)) * 512, 2, GiB, MiB);
	t.e[1].start = (UINT64_C(0xffffffff)) * 512 - GiB; /* the largest disk MBR can describe */
	check_mbr_layout("mbr-2TiB.img", &t);

	test_invalid();
	test_touch_nothing_else();
	test_relocate();
	test_read_errors();

	layout_make(&t, "golden", GiB, 4, 128 * MiB, MiB);
	test_golden("gpt4.dump", &table_gpt, &t);
	test_golden("mbr4.dump", &table_mbr, &t);

	rm_rf(tmpdir);
	return tap_done();
}
