#include "inspect.h"
#include "registry.h"
#include "gpt.h"
#include "hash.h"
#include "log.h"
#include "table.h"
#include "util.h"

#include <blkid/blkid.h>
#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>

#define MANIFEST_MAX (16u << 20)
#define NONE_TEXT "(none)"

static inline void blkid_free_probep(blkid_probe *p)
{
	if (*p)
		blkid_free_probe(*p);
}
static inline void json_object_putp(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}

char *inspect_printable(const char *s, size_t len)
{
	return str_printable(s, len, NULL);
}

static char *printable_str(const char *s)
{
	return s ? inspect_printable(s, strlen(s)) : NULL;
}

static void lower(char *s)
{
	for (; s && *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

void inspect_image_free(struct inspect_image *img)
{
	if (!img)
		return;
	for (size_t i = 0; i < img->n_parts; i++) {
		struct inspect_part *p = &img->parts[i];
		free(p->type_guid);
		free(p->name);
		free(p->uuid);
		free(p->fs);
		free(p->fs_label);
		free(p->fs_uuid);
		free(p->fs_version);
	}
	free(img->parts);
	free(img->ignored);
	free(img->path);
	free(img->table);
	free(img->disk_id);
	free(img);
}

static inline void inspect_image_freep(struct inspect_image **p) { inspect_image_free(*p); }

/* MBR type bytes by the names profiles use (0x83 is every Linux type: call it "linux"). */
static const char *mbr_type_name(int t)
{
	static const struct {
		uint8_t type;
		const char *name;
	} names[] = {
		{ 0x83, "linux" },     { 0x82, "swap" },     { 0xef, "esp" },	   { 0xea, "xbootldr" },
		{ 0x0c, "firmware" },  { 0x0b, "fat32" },    { 0x0e, "fat16" },	   { 0x06, "fat16" },
		{ 0x05, "extended" },  { 0x0f, "extended" }, { 0x85, "extended" }, { 0xee, "protective" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].type == t)
			return names[i].name;
	return NULL;
}

static void gpt_type_name(struct inspect_part *p)
{
	const struct arch *a;
	const struct part_type *t = part_type_from_guid(p->type_guid, &a);
	if (!t)
		return;
	p->type_name = t->name;
	/* The root type differs per architecture: say which. */
	if (a)
		p->type_arch = a->name;
}

static int lookup_dup(blkid_probe pr, const char *key, char **ret)
{
	const char *data = NULL;
	size_t len = 0;
	if (blkid_probe_lookup_value(pr, key, &data, &len) < 0 || !data)
		return 0;
	/* len counts the terminating NUL; a value is text up to its first NUL. */
	size_t n = strnlen(data, len);
	char *s = inspect_printable(data, n);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* The filesystem in [OFF, OFF+LEN) of FD. A partition without one is not an error. */
static int probe_fs(int fd, uint64_t off, uint64_t len, const char *path, struct inspect_part *p)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	if (off > INT64_MAX || len > INT64_MAX ||
	    blkid_probe_set_device(pr, fd, (blkid_loff_t)off, (blkid_loff_t)len) < 0) {
		log_warn("cannot probe partition %u of '%s' for a filesystem, ignoring", p->number, path);
		return 0;
	}
	blkid_probe_enable_partitions(pr, 0);
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_DEFAULT | BLKID_SUBLKS_VERSION);
	int r = blkid_do_safeprobe(pr);
	if (r == -2) {
		p->fs_ambiguous = true;
		return 0;
	}
	if (r < 0) {
		log_warn("cannot probe partition %u of '%s' for a filesystem, ignoring", p->number, path);
		return 0;
	}
	if (r == 1)
		return 0; /* nothing found */
	_cleanup_free_ char *bs = NULL;
	if (lookup_dup(pr, "TYPE", &p->fs) < 0 || lookup_dup(pr, "LABEL", &p->fs_label) < 0 ||
	    lookup_dup(pr, "UUID", &p->fs_uuid) < 0 || lookup_dup(pr, "VERSION", &p->fs_version) < 0 ||
	    lookup_dup(pr, "BLOCK_SIZE", &bs) < 0)
		return -ENOMEM;
	uint64_t v;
	if (bs && parse_u64(bs, &v) == 0)
		p->fs_block_size = v;
	return 0;
}

/* libblkid found no table: say why as precisely as we can. Always returns -ENODATA. */
static int explain_no_table(int fd, const char *path, uint64_t size)
{
	uint8_t s[1024];
	char have[24], want[24];
	format_size_human(size, have);

	if (size >= 4 && pread_full(fd, s, 4, 0) == 0 && memcmp(s, "QFI\xfb", 4) == 0) {
		log_error("cannot inspect '%s': it is a qcow2 image, and inspect reads raw images (the raw "
			  "NAME.img beside it, or 'qemu-img convert -O raw' first)", path);
		return -ENODATA;
	}
	if (size >= sizeof(s) && pread_full(fd, s, sizeof(s), 0) == 0 && s[510] == 0x55 && s[511] == 0xaa) {
		bool pmbr = false;
		for (int i = 0; i < 4; i++)
			pmbr |= s[446 + 16 * i + 4] == 0xee;
		if (pmbr && memcmp(s + 512, "EFI PART", 8) == 0) {
			uint64_t alt, last_usable;
			uint32_t n_entries, entry_size;
			memcpy(&alt, s + 512 + 32, 8);
			memcpy(&last_usable, s + 512 + 48, 8);
			memcpy(&n_entries, s + 512 + 80, 4);
			memcpy(&entry_size, s + 512 + 84, 4);
			alt = le64toh(alt);
			last_usable = le64toh(last_usable);
			n_entries = le32toh(n_entries);
			entry_size = le32toh(entry_size);
			uint64_t sectors = size / SECTOR, end = alt > last_usable ? alt : last_usable;
			if (entry_size != 128 || n_entries == 0 || n_entries > 16384) {
				log_error("invalid GPT header in '%s': it claims %" PRIu32 " entries of %" PRIu32
					  " bytes",
					  path, n_entries, entry_size);
			} else if (end >= sectors) {
				if (end < UINT64_MAX / SECTOR) {
					format_size_human((end + 1) * SECTOR, want);
					log_error("image '%s' is truncated: its GPT describes a disk of %" PRIu64
						  " bytes (%s), the image has %" PRIu64 " bytes (%s)",
						  path, (end + 1) * SECTOR, want, size, have);
				} else {
					log_error("invalid GPT header in '%s': it points beyond the end of the image "
						  "(sector %" PRIu64 ", the image has %" PRIu64 ")",
						  path, end, sectors);
				}
			} else {
				log_error("damaged GPT in '%s': libblkid rejects its header or entries (checksum?)",
					  path);
			}
			return -ENODATA;
		}
		if (pmbr) {
			log_error("no partition table found in '%s': a protective MBR without a GPT header", path);
			return -ENODATA;
		}
	}

	/* A bare filesystem is worth naming: someone may have passed a partition image. */
	_cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
	_cleanup_free_ char *type = NULL;
	if (pr && blkid_probe_set_device(pr, fd, 0, 0) == 0) {
		blkid_probe_enable_partitions(pr, 0);
		blkid_probe_enable_superblocks(pr, 1);
		if (blkid_do_safeprobe(pr) == 0)
			(void)lookup_dup(pr, "TYPE", &type);
	}
	if (type)
		log_error("no partition table found in '%s': it holds a bare %s filesystem", path, type);
	else
		log_error("no partition table found in '%s'", path);
	return -ENODATA;
}

static int read_partition(blkid_partition par, const char *table, uint64_t img_size, struct inspect_part *p)
{
	int no = blkid_partition_get_partno(par);
	blkid_loff_t start = blkid_partition_get_start(par), len = blkid_partition_get_size(par);
	if (no <= 0 || start < 0 || len < 0 || (uint64_t)start > UINT64_MAX / SECTOR ||
	    (uint64_t)len > UINT64_MAX / SECTOR)
		return -EBADMSG;
	p->number = (unsigned)no;
	p->start = (uint64_t)start * SECTOR;
	p->size = (uint64_t)len * SECTOR;
	p->mbr_type = -1;
	p->beyond_end = p->start > img_size || p->size > img_size - p->start;

	blkid_parttable t = blkid_partition_get_table(par);
	const char *ttype = t ? blkid_parttable_get_type(t) : table;
	if (ttype && STREQ(ttype, "gpt")) {
		p->type_guid = printable_str(blkid_partition_get_type_string(par));
		lower(p->type_guid);
		gpt_type_name(p);
	} else {
		int ty = blkid_partition_get_type(par);
		if (ty >= 0 && ty <= 0xff) {
			p->mbr_type = ty;
			p->type_name = mbr_type_name(ty);
		}
		p->extended = blkid_partition_is_extended(par);
	}
	const char *name = blkid_partition_get_name(par), *uuid = blkid_partition_get_uuid(par);
	if (name && *name && !(p->name = printable_str(name)))
		return -ENOMEM;
	if (uuid && *uuid && !(p->uuid = printable_str(uuid)))
		return -ENOMEM;
	lower(p->uuid);
	return 0;
}

/* The entries of a valid primary GPT that libblkid left out: it drops, without a word, an
 * entry outside the usable sectors (past the end of the disk, say), and so does Linux. A
 * primary header or array that does not check out is libblkid's to judge (it used the
 * backup): nothing is added then. */
static int find_ignored_entries(int fd, struct inspect_image *img)
{
	uint8_t hs[GPT_SECTOR];
	struct gpt_header h;
	if (img->size < 3 * GPT_SECTOR || pread_full(fd, hs, sizeof(hs), GPT_SECTOR) < 0)
		return 0;
	memcpy(&h, hs, sizeof(h));
	uint32_t hsize = le32toh(h.header_size), n = le32toh(h.num_partition_entries),
		 esize = le32toh(h.size_of_partition_entry);
	uint64_t lba = le64toh(h.partition_entry_lba), sectors = img->size / GPT_SECTOR;
	if (memcmp(h.signature, GPT_SIGNATURE, 8) != 0 || hsize < sizeof(h) || hsize > GPT_SECTOR ||
	    gpt_header_crc(hs, hsize) != le32toh(h.header_crc32) || esize < sizeof(struct gpt_entry) ||
	    esize > 4096 || n == 0 || n > 16384 || lba >= sectors ||
	    (uint64_t)n * esize > (sectors - lba) * GPT_SECTOR)
		return 0;
	size_t len = (size_t)n * esize;
	_cleanup_free_ uint8_t *a = malloc(len);
	if (!a)
		return -ENOMEM;
	if (pread_full(fd, a, len, lba * GPT_SECTOR) < 0 || crc32_ieee(0, a, len) != le32toh(h.partition_entry_array_crc32))
		return 0;
	img->first_usable_lba = le64toh(h.first_usable_lba);
	img->last_usable_lba = le64toh(h.last_usable_lba);
	for (uint32_t i = 0; i < n; i++) {
		struct gpt_entry e;
		memcpy(&e, a + (size_t)i * esize, sizeof(e));
		if (gpt_guid_is_null(e.type_guid))
			continue;
		bool listed = false;
		for (size_t k = 0; k < img->n_parts && !listed; k++)
			listed = img->parts[k].number == i + 1;
		if (listed)
			continue;
		struct inspect_ignored *ni = realloc(img->ignored, (img->n_ignored + 1) * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		img->ignored = ni;
		struct inspect_ignored *g = &img->ignored[img->n_ignored++];
		g->number = i + 1;
		g->first_lba = le64toh(e.starting_lba);
		g->last_lba = le64toh(e.ending_lba);
		g->beyond_end = g->first_lba >= sectors || g->last_lba >= sectors;
	}
	return 0;
}

/* Partitions that share sectors (an MBR extended partition holds its logical ones: not it). */
static void find_overlaps(struct inspect_image *img)
{
	for (size_t i = 0; i < img->n_parts; i++) {
		struct inspect_part *a = &img->parts[i];
		uint64_t a_end = a->start + a->size < a->start ? UINT64_MAX : a->start + a->size;
		for (size_t k = i + 1; k < img->n_parts; k++) {
			struct inspect_part *b = &img->parts[k];
			uint64_t b_end = b->start + b->size < b->start ? UINT64_MAX : b->start + b->size;
			if (a->extended || b->extended || !a->size || !b->size || a->start >= b_end || b->start >= a_end)
				continue;
			if (!a->overlaps) {
				a->overlaps = b->number;
				img->n_overlapping++;
			}
			if (!b->overlaps) {
				b->overlaps = a->number;
				img->n_overlapping++;
			}
		}
	}
}

int inspect_image(const char *path, struct inspect_image **ret)
{
	/* O_NONBLOCK: opening a FIFO by mistake must not hang; it changes nothing for files. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return log_errno(-errno, "cannot open image '%s'", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return log_errno(-errno, "cannot stat image '%s'", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_error("'%s' is not a regular file or block device", path);
		return -EINVAL;
	}

	_cleanup_(inspect_image_freep) struct inspect_image *img = calloc(1, sizeof(*img));
	if (!img || !(img->path = strdup(path)))
		return -ENOMEM;

	_cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, 0, 0) < 0) {
		log_error("cannot probe image '%s'", path);
		return -EIO;
	}
	blkid_loff_t sz = blkid_probe_get_size(pr);
	if (sz < 0) {
		log_error("cannot get the size of image '%s'", path);
		return -EIO;
	}
	img->size = (uint64_t)sz;

	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_partlist ls = blkid_probe_get_partitions(pr);
	blkid_parttable tab = ls ? blkid_partlist_get_table(ls) : NULL;
	const char *ttype = tab ? blkid_parttable_get_type(tab) : NULL;
	/* "PMBR": a protective MBR whose GPT libblkid rejected. */
	if (!ttype || STREQ(ttype, "PMBR"))
		return explain_no_table(fd, path, img->size);

	bool gpt = STREQ(ttype, "gpt"), dos = STREQ(ttype, "dos");
	if (!(img->table = printable_str(gpt ? "gpt" : dos ? "mbr" : ttype)))
		return -ENOMEM;
	const char *id = blkid_parttable_get_id(tab);
	if (id && *id) {
		bool has_0x = strncasecmp(id, "0x", 2) == 0;
		_cleanup_free_ char *raw = NULL;
		if (asprintf(&raw, "%s%s", dos && !has_0x ? "0x" : "", id) < 0)
			return -ENOMEM;
		if (!(img->disk_id = printable_str(raw)))
			return -ENOMEM;
		lower(img->disk_id);
	}

	int n = blkid_partlist_numof_partitions(ls);
	if (n < 0) {
		log_error("cannot read the partitions of '%s'", path);
		return -EIO;
	}
	if (n > 0 && !(img->parts = calloc((size_t)n, sizeof(*img->parts))))
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		blkid_partition par = blkid_partlist_get_partition(ls, i);
		if (!par)
			continue;
		struct inspect_part *p = &img->parts[img->n_parts];
		int r = read_partition(par, ttype, img->size, p);
		img->n_parts++; /* counted even when partly filled, so that it is freed */
		if (r == -EBADMSG) {
			log_error("invalid partition entry %d in '%s'", i + 1, path);
			return -EBADMSG;
		}
		if (r < 0)
			return r;
		if (p->beyond_end)
			img->n_beyond_end++;
		if (p->extended || p->size == 0 || p->start >= img->size)
			continue;
		uint64_t avail = img->size - p->start, len = p->size < avail ? p->size : avail;
		r = probe_fs(fd, p->start, len, path, p);
		if (r < 0)
			return r;
	}
	find_overlaps(img);
	if (gpt) {
		int r = find_ignored_entries(fd, img);
		if (r < 0)
			return r;
	}

	*ret = TAKE_PTR(img);
	return 0;
}

/* Manifest comparison. */

void inspect_report_free(struct inspect_report *rep)
{
	if (!rep)
		return;
	for (size_t i = 0; i < rep->n_mismatches; i++) {
		free(rep->mismatches[i].field);
		free(rep->mismatches[i].manifest);
		free(rep->mismatches[i].image);
	}
	free(rep->mismatches);
	free(rep->checked);
	free(rep->path);
	free(rep);
}

static inline void inspect_report_freep(struct inspect_report **p) { inspect_report_free(*p); }

static int add_checked(struct inspect_report *rep, unsigned number)
{
	size_t i = 0;
	while (i < rep->n_checked && rep->checked[i] < number)
		i++;
	if (i < rep->n_checked && rep->checked[i] == number)
		return 0;
	unsigned *nc = realloc(rep->checked, (rep->n_checked + 1) * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	memmove(nc + i + 1, nc + i, (rep->n_checked - i) * sizeof(*nc));
	nc[i] = number;
	rep->checked = nc;
	rep->n_checked++;
	return 0;
}

static int add_mismatch(struct inspect_report *rep, unsigned number, const char *field, const char *mval,
			const char *ival)
{
	struct inspect_mismatch *nm = realloc(rep->mismatches, (rep->n_mismatches + 1) * sizeof(*nm));
	if (!nm)
		return -ENOMEM;
	rep->mismatches = nm;
	struct inspect_mismatch *m = &nm[rep->n_mismatches];
	m->number = number;
	m->field = strdup(field);
	m->manifest = printable_str(mval ? mval : NONE_TEXT);
	m->image = printable_str(ival ? ival : NONE_TEXT);
	rep->n_mismatches++; /* counted before the checks below, so that it is freed */
	if (!m->field || !m->manifest || !m->image)
		return -ENOMEM;
	return 0;
}

enum cmp { CMP_EXACT, CMP_NOCASE, CMP_HEX };

static bool hex_value(const char *s, uint64_t *ret)
{
	if (strncasecmp(s, "0x", 2) == 0)
		s += 2;
	if (!*s || strlen(s) > 16)
		return false;
	uint64_t v = 0;
	for (; *s; s++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 :
			*s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;
		if (d < 0)
			return false;
		v = v * 16 + (uint64_t)d;
	}
	*ret = v;
	return true;
}

/* MV is the manifest's value (NULL for JSON null: "no such thing"); IVAL the image's. */
static int check_str(struct inspect_report *rep, unsigned number, const char *field, struct json_object *mv,
		     const char *ival, enum cmp how)
{
	if (mv && !json_object_is_type(mv, json_type_string))
		return add_mismatch(rep, number, field, json_object_to_json_string(mv), ival);
	const char *m = mv ? json_object_get_string(mv) : NULL;
	/* The build writes "" for a value that does not exist (a partition without a filesystem
	 * has fs "none" and fs_uuid ""). */
	if (m && (!*m || (STREQ(field, "fs") && STREQ(m, "none"))))
		m = NULL;
	bool same;
	uint64_t a, b;
	if (!m || !ival)
		same = !m && !ival;
	else if (how == CMP_HEX && hex_value(m, &a) && hex_value(ival, &b))
		same = a == b;
	else if (how == CMP_EXACT)
		same = STREQ(m, ival);
	else
		same = strcasecmp(m, ival) == 0;
	return same ? 0 : add_mismatch(rep, number, field, m, ival);
}

static int check_u64(struct inspect_report *rep, unsigned number, const char *field, struct json_object *mv,
		     uint64_t ival)
{
	char ibuf[24];
	snprintf(ibuf, sizeof(ibuf), "%" PRIu64, ival);
	if (mv && json_object_is_type(mv, json_type_int)) {
		int64_t m = json_object_get_int64(mv);
		if (m >= 0 && (uint64_t)m == ival)
			return 0;
	}
	return add_mismatch(rep, number, field, mv ? json_object_to_json_string(mv) : NULL, ibuf);
}

static int check_mbr_type(struct inspect_report *rep, unsigned number, struct json_object *mv, int ival)
{
	char ibuf[16];
	if (ival >= 0)
		snprintf(ibuf, sizeof(ibuf), "0x%02x", (unsigned)ival & 0xffu);
	uint64_t m;
	bool ok = false;
	if (mv && json_object_is_type(mv, json_type_int)) {
		int64_t v = json_object_get_int64(mv);
		ok = ival >= 0 && v == ival;
	} else if (mv && json_object_is_type(mv, json_type_string)) {
		ok = ival >= 0 && hex_value(json_object_get_string(mv), &m) && m == (uint64_t)ival;
	} else if (!mv)
		ok = ival < 0;
	if (ok)
		return 0;
	const char *mtext = !mv ? NULL :
			    json_object_is_type(mv, json_type_string) ? json_object_get_string(mv) :
									json_object_to_json_string(mv);
	return add_mismatch(rep, number, "mbr_type", mtext, ival >= 0 ? ibuf : NULL);
}

static int compare_table(const struct inspect_image *img, struct json_object *t, struct inspect_report *rep)
{
	bool gpt = img->table && STREQ(img->table, "gpt"), mbr = img->table && STREQ(img->table, "mbr");
	struct json_object *v;
	int r = add_checked(rep, 0);
	/* The build records both a disk GUID and an MBR disk id; only the one of the table type
	 * it wrote is on the disk (a different type is a mismatch of its own). */
	const char *kind = img->table;
	if (json_object_object_get_ex(t, "type", &v)) {
		if (json_object_is_type(v, json_type_string))
			kind = json_object_get_string(v);
		r = check_str(rep, 0, "type", v, img->table, CMP_NOCASE);
	}
	if (r == 0 && kind && strcasecmp(kind, "gpt") == 0 && json_object_object_get_ex(t, "disk_guid", &v))
		r = check_str(rep, 0, "disk_guid", v, gpt ? img->disk_id : NULL, CMP_NOCASE);
	if (r == 0 && kind && strcasecmp(kind, "mbr") == 0 && json_object_object_get_ex(t, "disk_id", &v))
		r = check_str(rep, 0, "disk_id", v, mbr ? img->disk_id : NULL, CMP_HEX);
	if (r == 0 && json_object_object_get_ex(t, "size", &v))
		r = check_u64(rep, 0, "size", v, img->size);
	return r;
}

static int compare_partition(const struct inspect_image *img, const struct inspect_part *p, unsigned number,
			     struct json_object *mp, struct inspect_report *rep)
{
	struct json_object *v;
	int r = 0;
	if (!p)
		return add_mismatch(rep, number, "partition", "present", NULL);
	if (json_object_object_get_ex(mp, "start", &v))
		r = check_u64(rep, number, "start", v, p->start);
	if (r == 0 && json_object_object_get_ex(mp, "size", &v))
		r = check_u64(rep, number, "size", v, p->size);
	/* The build records a type GUID for MBR partitions too, and names them: only GPT keeps
	 * either on the disk. A table of another type is flagged by the table's own check. */
	bool gpt = img->table && STREQ(img->table, "gpt"), mbr = img->table && STREQ(img->table, "mbr");
	if (r == 0 && gpt && json_object_object_get_ex(mp, "type_guid", &v))
		r = check_str(rep, number, "type_guid", v, p->type_guid, CMP_NOCASE);
	if (r == 0 && mbr && json_object_object_get_ex(mp, "mbr_type", &v))
		r = check_mbr_type(rep, number, v, p->mbr_type);
	if (r == 0 && gpt && json_object_object_get_ex(mp, "name", &v))
		r = check_str(rep, number, "name", v, p->name, CMP_EXACT);
	if (r == 0 && json_object_object_get_ex(mp, "uuid", &v))
		r = check_str(rep, number, "uuid", v, p->uuid, CMP_NOCASE);
	if (r == 0 && json_object_object_get_ex(mp, "fs", &v))
		r = check_str(rep, number, "fs", v, p->fs, CMP_EXACT);
	if (r == 0 && json_object_object_get_ex(mp, "fs_uuid", &v))
		r = check_str(rep, number, "fs_uuid", v, p->fs_uuid, CMP_NOCASE);
	if (r == 0 && json_object_object_get_ex(mp, "label", &v))
		/* FAT labels are case-insensitive (DOS stores them upper case). */
		r = check_str(rep, number, "label", v, p->fs_label,
			      p->fs && STREQ(p->fs, "vfat") ? CMP_NOCASE : CMP_EXACT);
	return r;
}

static const struct inspect_part *find_part(const struct inspect_image *img, unsigned number)
{
	for (size_t i = 0; i < img->n_parts; i++)
		if (img->parts[i].number == number)
			return &img->parts[i];
	return NULL;
}

int inspect_compare_json(const struct inspect_image *img, struct json_object *m, struct inspect_report **ret)
{
	_cleanup_(inspect_report_freep) struct inspect_report *rep = calloc(1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	rep->present = true;
	if (!json_object_is_type(m, json_type_object)) {
		log_error("manifest is not a JSON object");
		return -EBADMSG;
	}
	struct json_object *t, *parts;
	int r;
	if (json_object_object_get_ex(m, "table", &t)) {
		if (!json_object_is_type(t, json_type_object)) {
			log_error("manifest: .table is not an object");
			return -EBADMSG;
		}
		if ((r = compare_table(img, t, rep)) < 0)
			return r;
	}
	if (json_object_object_get_ex(m, "partitions", &parts)) {
		if (!json_object_is_type(parts, json_type_array)) {
			log_error("manifest: .partitions is not an array");
			return -EBADMSG;
		}
		size_t n = json_object_array_length(parts);
		for (size_t i = 0; i < n; i++) {
			struct json_object *mp = json_object_array_get_idx(parts, i), *num;
			if (!json_object_is_type(mp, json_type_object)) {
				log_error("manifest: .partitions[%zu] is not an object", i);
				return -EBADMSG;
			}
			int64_t number = (int64_t)i + 1;
			if (json_object_object_get_ex(mp, "number", &num)) {
				if (!json_object_is_type(num, json_type_int) ||
				    (number = json_object_get_int64(num)) < 1 || number > 0xffff) {
					log_error("manifest: .partitions[%zu].number is not a partition number", i);
					return -EBADMSG;
				}
			}
			for (size_t k = 0; k < rep->n_checked; k++)
				if (rep->checked[k] == (unsigned)number) {
					log_error("manifest: .partitions[%zu]: partition %" PRId64 " is listed twice",
						  i, number);
					return -EBADMSG;
				}
			if ((r = add_checked(rep, (unsigned)number)) < 0 ||
			    (r = compare_partition(img, find_part(img, (unsigned)number), (unsigned)number, mp,
						   rep)) < 0)
				return r;
		}
		/* Partitions in the image that the manifest does not list. */
		for (size_t i = 0; i < img->n_parts; i++) {
			bool listed = false;
			for (size_t k = 0; k < rep->n_checked; k++)
				listed |= rep->checked[k] == img->parts[i].number && img->parts[i].number != 0;
			if (listed)
				continue;
			if ((r = add_checked(rep, img->parts[i].number)) < 0 ||
			    (r = add_mismatch(rep, img->parts[i].number, "partition", NULL, "present")) < 0)
				return r;
		}
	}
	*ret = TAKE_PTR(rep);
	return 0;
}

int inspect_compare_manifest(const struct inspect_image *img, struct inspect_report **ret)
{
	const char *slash = strrchr(img->path, '/');
	_cleanup_free_ char *mpath = NULL, *buf = NULL;
	if (!slash)
		mpath = strdup("manifest.json");
	else if (slash == img->path)
		mpath = strdup("/manifest.json");
	else if ((size_t)(slash - img->path) > INT_MAX)
		return -ENAMETOOLONG;
	else if (asprintf(&mpath, "%.*s/manifest.json", (int)(slash - img->path), img->path) < 0)
		mpath = NULL;
	if (!mpath)
		return -ENOMEM;

	struct stat st;
	if (lstat(mpath, &st) < 0 && errno == ENOENT) {
		struct inspect_report *rep = calloc(1, sizeof(*rep));
		if (!rep)
			return -ENOMEM;
		*ret = rep;
		return 0;
	}
	/* Beside an image from anywhere: a FIFO, a device or a symlink there is refused, not
	 * waited on or followed. */
	int r = read_file_flags(mpath, O_NOFOLLOW, MANIFEST_MAX, &buf, NULL);
	if (r == -EINVAL || r == -ELOOP) {
		log_error("manifest '%s' is not a regular file", mpath);
		return r;
	}
	if (r == -EFBIG) {
		log_error("manifest '%s' is larger than %u MiB", mpath, (unsigned)(MANIFEST_MAX >> 20));
		return r;
	}
	if (r < 0)
		return log_errno(r, "cannot read manifest '%s'", mpath);

	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	_cleanup_(json_object_putp) struct json_object *m = json_tokener_parse_ex(tok, buf, (int)strlen(buf));
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!m || jerr != json_tokener_success) {
		log_error("invalid JSON in manifest '%s': %s", mpath,
			  jerr == json_tokener_continue ? "unexpected end of file" : json_tokener_error_desc(jerr));
		return -EBADMSG;
	}
	for (const char *p = buf + used; *p; p++)
		if (!strchr(" \t\r\n", *p)) {
			log_error("invalid JSON in manifest '%s': trailing text after the object", mpath);
			return -EBADMSG;
		}

	struct inspect_report *rep = NULL;
	r = inspect_compare_json(img, m, &rep);
	if (r < 0) {
		if (r == -EBADMSG)
			log_error("cannot use manifest '%s'", mpath);
		return r;
	}
	rep->path = TAKE_PTR(mpath);
	*ret = rep;
	return 0;
}

/* Output. */

static void print_size_line(FILE *f, const char *what, uint64_t v)
{
	char h[24];
	format_size_human(v, h);
	fprintf(f, "  %-14s %" PRIu64 " (%s)\n", what, v, h);
}

static void print_mismatch(FILE *f, const struct inspect_mismatch *m)
{
	char where[32];
	if (m->number)
		snprintf(where, sizeof(where), "partition %u", m->number);
	else
		snprintf(where, sizeof(where), "table");
	if (STREQ(m->field, "partition"))
		fprintf(f, "  %s: %s\n", where,
			STREQ(m->image, NONE_TEXT) ? "missing from the image" : "not in the manifest");
	else
		fprintf(f, "  %s: %s differs: manifest '%s', image '%s'\n", where, m->field, m->manifest, m->image);
}

void inspect_print_text(const struct inspect_image *img, const struct inspect_report *rep, FILE *f)
{
	char h[24];
	format_size_human(img->size, h);
	fprintf(f, "image: %s\n", img->path);
	fprintf(f, "size: %" PRIu64 " (%s)\n", img->size, h);
	fprintf(f, "table: %s\n", img->table);
	if (img->disk_id)
		fprintf(f, "%s: %s\n", STREQ(img->table, "gpt") ? "disk guid" : "disk id", img->disk_id);
	fprintf(f, "partitions: %zu\n", img->n_parts);

	for (size_t i = 0; i < img->n_parts; i++) {
		const struct inspect_part *p = &img->parts[i];
		fprintf(f, "\npartition %u\n", p->number);
		print_size_line(f, "start:", p->start);
		print_size_line(f, "size:", p->size);
		if (p->type_guid)
			fprintf(f, "  %-14s %s (%s%s%s)\n", "type:", p->type_guid, p->type_name ? p->type_name : "unknown",
				p->type_arch ? ", " : "", p->type_arch ? p->type_arch : "");
		else if (p->mbr_type >= 0)
			fprintf(f, "  %-14s 0x%02x (%s)\n", "type:", (unsigned)p->mbr_type,
				p->type_name ? p->type_name : "unknown");
		if (p->name)
			fprintf(f, "  %-14s %s\n", "name:", p->name);
		fprintf(f, "  %-14s %s\n", "uuid:", p->uuid ? p->uuid : "none");
		if (p->beyond_end)
			fprintf(f, "  %-14s beyond end of image (ends at %" PRIu64 ", the image has %" PRIu64 " bytes)\n",
				"problem:", p->start + p->size < p->start ? UINT64_MAX : p->start + p->size, img->size);
		if (p->overlaps)
			fprintf(f, "  %-14s overlaps partition %u\n", "problem:", p->overlaps);
		if (p->extended) {
			fprintf(f, "  %-14s none (extended partition)\n", "fs:");
			continue;
		}
		if (!p->fs) {
			fprintf(f, "  %-14s %s\n", "fs:", p->fs_ambiguous ? "none (several signatures, ambiguous)" : "none");
			continue;
		}
		fprintf(f, "  %-14s %s\n", "fs:", p->fs);
		fprintf(f, "  %-14s %s\n", "label:", p->fs_label ? p->fs_label : "none");
		fprintf(f, "  %-14s %s\n", "fs uuid:", p->fs_uuid ? p->fs_uuid : "none");
		if (p->fs_version)
			fprintf(f, "  %-14s %s\n", "fs version:", p->fs_version);
		if (p->fs_block_size)
			fprintf(f, "  %-14s %" PRIu64 "\n", "fs block size:", p->fs_block_size);
	}

	fputc('\n', f);
	if (img->n_beyond_end)
		fprintf(f, "problems: %u partition%s beyond end of image\n", img->n_beyond_end,
			img->n_beyond_end == 1 ? "" : "s");
	if (img->n_overlapping)
		fprintf(f, "problems: %u partitions overlap another\n", img->n_overlapping);
	for (size_t i = 0; i < img->n_ignored; i++) {
		const struct inspect_ignored *g = &img->ignored[i];
		fprintf(f,
			"problems: GPT entry %u (sectors %" PRIu64 "-%" PRIu64 ") lies outside the usable sectors %" PRIu64
			"-%" PRIu64 "%s: libblkid and Linux ignore it\n",
			g->number, g->first_lba, g->last_lba, img->first_usable_lba, img->last_usable_lba,
			g->beyond_end ? ", past the end of the image" : "");
	}
	if (!rep || !rep->present) {
		fprintf(f, "manifest: none\n");
		return;
	}
	fprintf(f, "manifest: %s\n", rep->path ? rep->path : "(given)");
	for (size_t i = 0; i < rep->n_checked; i++) {
		bool any = false;
		for (size_t k = 0; k < rep->n_mismatches; k++)
			if (rep->mismatches[k].number == rep->checked[i]) {
				print_mismatch(f, &rep->mismatches[k]);
				any = true;
			}
		if (any)
			continue;
		if (rep->checked[i])
			fprintf(f, "  partition %u: match\n", rep->checked[i]);
		else
			fprintf(f, "  table: match\n");
	}
	if (rep->n_mismatches == 0)
		fprintf(f, "manifest: matches\n");
	else
		fprintf(f, "manifest: %zu mismatch%s\n", rep->n_mismatches, rep->n_mismatches == 1 ? "" : "es");
}

/* json-c reports out of memory by returning NULL or -1; collect the first failure. */
static void jadd(struct json_object *o, const char *key, struct json_object *v, bool *oom)
{
	if (*oom) {
		json_object_put(v);
		return;
	}
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		*oom = true;
	}
}

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *ju64(uint64_t v)
{
	return v <= INT64_MAX ? json_object_new_int64((int64_t)v) : json_object_new_uint64(v);
}

static struct json_object *jhuman(uint64_t v)
{
	char h[24];
	format_size_human(v, h);
	return json_object_new_string(h);
}

static struct json_object *part_to_json(const struct inspect_part *p, bool *oom)
{
	struct json_object *o = json_object_new_object();
	if (!o) {
		*oom = true;
		return NULL;
	}
	jadd(o, "number", json_object_new_int64(p->number), oom);
	jadd(o, "start", ju64(p->start), oom);
	jadd(o, "start_human", jhuman(p->start), oom);
	jadd(o, "size", ju64(p->size), oom);
	jadd(o, "size_human", jhuman(p->size), oom);
	jadd(o, "type_guid", jstr(p->type_guid), oom);
	jadd(o, "mbr_type", p->mbr_type >= 0 ? json_object_new_int(p->mbr_type) : NULL, oom);
	jadd(o, "type", jstr(p->type_name), oom);
	jadd(o, "type_arch", jstr(p->type_arch), oom);
	jadd(o, "name", jstr(p->name), oom);
	jadd(o, "uuid", jstr(p->uuid), oom);
	jadd(o, "extended", json_object_new_boolean(p->extended), oom);
	jadd(o, "beyond_end", json_object_new_boolean(p->beyond_end), oom);
	jadd(o, "overlaps", p->overlaps ? json_object_new_int64(p->overlaps) : NULL, oom);
	jadd(o, "fs", jstr(p->fs), oom);
	jadd(o, "label", jstr(p->fs_label), oom);
	jadd(o, "fs_uuid", jstr(p->fs_uuid), oom);
	jadd(o, "fs_version", jstr(p->fs_version), oom);
	jadd(o, "fs_block_size", p->fs_block_size ? ju64(p->fs_block_size) : NULL, oom);
	jadd(o, "fs_ambiguous", json_object_new_boolean(p->fs_ambiguous), oom);
	return o;
}

int inspect_to_json(const struct inspect_image *img, const struct inspect_report *rep, struct json_object **ret)
{
	bool oom = false;
	_cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
	struct json_object *table = json_object_new_object(), *parts = json_object_new_array(),
			   *problems = json_object_new_array(), *man = json_object_new_object(),
			   *mm = json_object_new_array();
	if (!o || !table || !parts || !problems || !man || !mm) {
		json_object_put(table);
		json_object_put(parts);
		json_object_put(problems);
		json_object_put(man);
		json_object_put(mm);
		return -ENOMEM;
	}
	jadd(o, "image", jstr(img->path), &oom);
	jadd(o, "size", ju64(img->size), &oom);
	jadd(o, "size_human", jhuman(img->size), &oom);
	jadd(table, "type", jstr(img->table), &oom);
	bool gpt = img->table && STREQ(img->table, "gpt");
	jadd(table, gpt ? "disk_guid" : "disk_id", jstr(img->disk_id), &oom);
	jadd(table, "size", ju64(img->size), &oom);
	jadd(o, "table", table, &oom);

	for (size_t i = 0; i < img->n_parts && !oom; i++) {
		const struct inspect_part *p = &img->parts[i];
		struct json_object *po = part_to_json(p, &oom);
		if (po && json_object_array_add(parts, po) < 0) {
			json_object_put(po);
			oom = true;
		}
		if (p->beyond_end) {
			_cleanup_free_ char *msg = NULL;
			if (asprintf(&msg, "partition %u: beyond end of image", p->number) < 0 ||
			    json_object_array_add(problems, json_object_new_string(msg)) < 0)
				oom = true;
		}
		if (p->overlaps) {
			_cleanup_free_ char *msg = NULL;
			if (asprintf(&msg, "partition %u: overlaps partition %u", p->number, p->overlaps) < 0 ||
			    json_object_array_add(problems, json_object_new_string(msg)) < 0)
				oom = true;
		}
	}
	struct json_object *ign = json_object_new_array();
	for (size_t i = 0; ign && i < img->n_ignored && !oom; i++) {
		const struct inspect_ignored *g = &img->ignored[i];
		_cleanup_free_ char *msg = NULL;
		struct json_object *go = json_object_new_object();
		if (!go || json_object_array_add(ign, go) < 0) {
			json_object_put(go);
			oom = true;
			break;
		}
		jadd(go, "number", json_object_new_int64(g->number), &oom);
		jadd(go, "first_lba", ju64(g->first_lba), &oom);
		jadd(go, "last_lba", ju64(g->last_lba), &oom);
		jadd(go, "beyond_end", json_object_new_boolean(g->beyond_end), &oom);
		if (asprintf(&msg, "GPT entry %u: sectors %" PRIu64 "-%" PRIu64 " outside the usable sectors %" PRIu64
			     "-%" PRIu64 ", ignored",
			     g->number, g->first_lba, g->last_lba, img->first_usable_lba, img->last_usable_lba) < 0 ||
		    json_object_array_add(problems, json_object_new_string(msg)) < 0)
			oom = true;
	}
	if (!ign)
		oom = true;
	jadd(o, "ignored_entries", ign, &oom);
	jadd(o, "partitions", parts, &oom);
	jadd(o, "problems", problems, &oom);

	bool present = rep && rep->present;
	jadd(man, "present", json_object_new_boolean(present), &oom);
	jadd(man, "path", jstr(present ? rep->path : NULL), &oom);
	/* No manifest matches nothing: "matches" is true only for a manifest that is there. */
	jadd(man, "matches", json_object_new_boolean(present && rep->n_mismatches == 0), &oom);
	for (size_t i = 0; present && i < rep->n_mismatches && !oom; i++) {
		const struct inspect_mismatch *m = &rep->mismatches[i];
		struct json_object *mo = json_object_new_object();
		if (!mo) {
			oom = true;
			break;
		}
		jadd(mo, "partition", json_object_new_int64(m->number), &oom);
		jadd(mo, "field", jstr(m->field), &oom);
		jadd(mo, "manifest", STREQ(m->manifest, NONE_TEXT) ? NULL : jstr(m->manifest), &oom);
		jadd(mo, "image", STREQ(m->image, NONE_TEXT) ? NULL : jstr(m->image), &oom);
		if (json_object_array_add(mm, mo) < 0) {
			json_object_put(mo);
			oom = true;
		}
	}
	jadd(man, "mismatches", mm, &oom);
	jadd(o, "manifest", man, &oom);
	if (oom)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

int boot_view_check(struct boot_view *v, bool ok, const char *fmt, ...)
{
	if (v->n_checks == BOOT_VIEW_CHECKS)
		return -E2BIG;
	va_list ap;
	va_start(ap, fmt);
	char *raw = NULL;
	int n = vasprintf(&raw, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	char *what = inspect_printable(raw, strlen(raw)); /* names come from the image */
	free(raw);
	if (!what)
		return -ENOMEM;
	v->checks[v->n_checks].what = what;
	v->checks[v->n_checks++].ok = ok;
	return 0;
}

/* TEXT line by line, each made printable. */
int boot_view_file(struct boot_view *v, const char *name, const char *text)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	for (const char *t = text; *t;) {
		size_t n = strcspn(t, "\n");
		_cleanup_free_ char *line = inspect_printable(t, n);
		if (line)
			fprintf(f, "%s\n", line);
		t += n + (t[n] == '\n');
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	v->files[v->n_files].text = buf;
	v->files[v->n_files++].name = name;
	return 0;
}

int inspect_cmdline_root(const struct inspect_image *img, const char *cmdline, const char **ret_root,
			 size_t *ret_len, const struct inspect_part **ret_part)
{
	const char *root = NULL;
	for (const char *w = cmdline; *w; w += strcspn(w, " \t")) {
		w += strspn(w, " \t");
		if (str_starts_with(w, "root="))
			root = w + 5;
	}
	if (!root)
		return -ENOENT;
	size_t n = strcspn(root, " \t\r\n");
	*ret_root = root;
	*ret_len = n;
	*ret_part = NULL;
	bool partuuid = !strncmp(root, "PARTUUID=", 9), uuid = !strncmp(root, "UUID=", 5);
	if (!partuuid && !uuid)
		return -EOPNOTSUPP;
	const char *id = root + (partuuid ? 9 : 5);
	size_t idn = n - (partuuid ? 9 : 5);
	for (size_t i = 0; i < img->n_parts; i++) {
		const char *have = partuuid ? img->parts[i].uuid : img->parts[i].fs_uuid;
		if (have && strlen(have) == idn && !strncasecmp(have, id, idn))
			*ret_part = &img->parts[i];
	}
	return 0;
}

int boot_view_root(struct boot_view *v, const struct inspect_image *img, const char *what, const char *cmdline)
{
	const char *root;
	size_t n;
	const struct inspect_part *p;
	int r = inspect_cmdline_root(img, cmdline, &root, &n, &p);
	if (r == -ENOENT)
		return boot_view_check(v, false, "%s names no root=", what);
	if (r < 0)
		return boot_view_check(v, true, "%s's root=%.*s is a device name: not checked", what, (int)n, root);
	if (p)
		return boot_view_check(v, true, "%s's root=%.*s is partition %u (%s)", what, (int)n, root, p->number,
				       p->fs ? p->fs : "no filesystem");
	return boot_view_check(v, false, "%s's root=%.*s is no partition of the image", what, (int)n, root);
}

void boot_view_print(const struct boot_view *v, FILE *f)
{
	fprintf(f, "\nboot loader: %s\n", v->loader);
	for (size_t i = 0; i < v->n_files; i++) {
		fprintf(f, "  %s:\n", v->files[i].name);
		const char *t = v->files[i].text;
		while (*t) {
			size_t n = strcspn(t, "\n");
			fprintf(f, "    | %.*s\n", (int)n, t);
			t += n + (t[n] == '\n');
		}
	}
	size_t bad = 0;
	for (size_t i = 0; i < v->n_checks; i++) {
		fprintf(f, "  %-8s %s\n", v->checks[i].ok ? "ok" : "PROBLEM", v->checks[i].what);
		bad += !v->checks[i].ok;
	}
	if (bad)
		fprintf(f, "boot files: %zu problem%s\n", bad, bad == 1 ? "" : "s");
	else
		fprintf(f, "boot files: agree with the image\n");
}

int boot_view_json(const struct boot_view *v, struct json_object *o)
{
	bool oom = false;
	struct json_object *b = json_object_new_object(), *files = json_object_new_object(),
			   *checks = json_object_new_array();
	if (!b || !files || !checks) {
		json_object_put(b);
		json_object_put(files);
		json_object_put(checks);
		return -ENOMEM;
	}
	jadd(b, "loader", jstr(v->loader), &oom);
	for (size_t i = 0; i < v->n_files; i++)
		jadd(files, v->files[i].name, jstr(v->files[i].text), &oom);
	jadd(b, "files", files, &oom);
	for (size_t i = 0; i < v->n_checks && !oom; i++) {
		struct json_object *c = json_object_new_object();
		if (!c) {
			oom = true;
			break;
		}
		jadd(c, "check", jstr(v->checks[i].what), &oom);
		jadd(c, "ok", json_object_new_boolean(v->checks[i].ok), &oom);
		if (json_object_array_add(checks, c) < 0) {
			json_object_put(c);
			oom = true;
		}
	}
	jadd(b, "checks", checks, &oom);
	jadd(o, "boot", b, &oom);
	return oom ? -ENOMEM : 0;
}
