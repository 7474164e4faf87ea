/* GUID Partition Table (UEFI 2.10, chapter 5): reading an existing table, moving its backup
 * to the end of a grown disk, and growing a partition, for pmoves-firstboot's growfs step;
 * the helpers the builder's writer (builder/table-gpt.c) shares. Nothing here prints; errors
 * are -errno. */
#include "gpt.h"
#include "hash.h"
#include "mbr.h"
#include "util.h"

#include <endian.h>
#include <stddef.h>

#define SECTOR GPT_SECTOR
/* The reader accepts arrays written by other tools, within reason. */
#define GPT_READ_MAX_ARRAY (1024u * 1024u)

const uint8_t gpt_type_esp[16] = { 0xc1, 0x2a, 0x73, 0x28, 0xf8, 0x1f, 0x11, 0xd2,
				   0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };

void gpt_guid_swap(const uint8_t in[16], uint8_t out[16])
{
	uint8_t t[16];
	memcpy(t, in, 16);
	out[0] = t[3], out[1] = t[2], out[2] = t[1], out[3] = t[0];
	out[4] = t[5], out[5] = t[4];
	out[6] = t[7], out[7] = t[6];
	memcpy(out + 8, t + 8, 8);
}

bool gpt_guid_is_null(const uint8_t g[16])
{
	static const uint8_t zero[16];
	return memcmp(g, zero, 16) == 0;
}

uint32_t gpt_header_crc(const uint8_t *sector_buf, uint32_t header_size)
{
	uint8_t tmp[SECTOR];
	memcpy(tmp, sector_buf, header_size);
	memset(tmp + offsetof(struct gpt_header, header_crc32), 0, 4);
	return crc32_ieee(0, tmp, header_size);
}

void gpt_pmbr_record(uint64_t last_lba, struct mbr_part *r)
{
	memset(r, 0, sizeof(*r));
	(void)mbr_lba_chs(1, r->first_chs); /* 0x000200: head 0, sector 2, cylinder 0 */
	r->type = 0xee;
	if (!mbr_lba_chs(last_lba, r->last_chs))
		memset(r->last_chs, 0xff, 3);
	r->first_lba = htole32(1);
	r->sectors = htole32(last_lba > UINT32_MAX ? UINT32_MAX : (uint32_t)last_lba);
}

/* Read and check the header at LBA: signature, size, CRC, its own LBA. Returns the header in
 * host order and the raw sector (for rewriting fields in place). */
static int header_read(int fd, uint64_t lba, struct gpt_header *ret_h, uint8_t ret_raw[SECTOR])
{
	uint8_t raw[SECTOR];
	struct gpt_header h;
	int r = pread_full(fd, raw, SECTOR, lba * SECTOR);
	if (r < 0)
		return r;
	memcpy(&h, raw, sizeof(h));
	if (memcmp(h.signature, GPT_SIGNATURE, 8) != 0)
		return -ENXIO;
	h.revision = le32toh(h.revision);
	h.header_size = le32toh(h.header_size);
	h.header_crc32 = le32toh(h.header_crc32);
	h.my_lba = le64toh(h.my_lba);
	h.alternate_lba = le64toh(h.alternate_lba);
	h.first_usable_lba = le64toh(h.first_usable_lba);
	h.last_usable_lba = le64toh(h.last_usable_lba);
	h.partition_entry_lba = le64toh(h.partition_entry_lba);
	h.num_partition_entries = le32toh(h.num_partition_entries);
	h.size_of_partition_entry = le32toh(h.size_of_partition_entry);
	h.partition_entry_array_crc32 = le32toh(h.partition_entry_array_crc32);
	if (h.header_size < sizeof(h) || h.header_size > SECTOR)
		return -EBADMSG;
	if (gpt_header_crc(raw, h.header_size) != h.header_crc32)
		return -EBADMSG;
	if (h.my_lba != lba)
		return -EBADMSG;
	/* Entry size is 128 * 2^n; the array stays within reason and outside the usable range. */
	uint32_t es = h.size_of_partition_entry;
	if (es < GPT_ENTRY_SIZE || es % GPT_ENTRY_SIZE != 0 || ((es / GPT_ENTRY_SIZE) & (es / GPT_ENTRY_SIZE - 1)))
		return -EBADMSG;
	if (h.num_partition_entries == 0 ||
	    h.num_partition_entries > GPT_READ_MAX_ARRAY / es)
		return -EBADMSG;
	uint64_t array_sectors = ((uint64_t)h.num_partition_entries * es + SECTOR - 1) / SECTOR;
	if (h.first_usable_lba > h.last_usable_lba)
		return -EBADMSG;
	if (lba == 1 && (h.partition_entry_lba < 2 ||
			 h.partition_entry_lba + array_sectors > h.first_usable_lba ||
			 h.alternate_lba <= h.last_usable_lba))
		return -EBADMSG;
	if (lba != 1 && (h.partition_entry_lba <= h.last_usable_lba ||
			 h.partition_entry_lba + array_sectors > lba))
		return -EBADMSG;
	*ret_h = h;
	memcpy(ret_raw, raw, SECTOR);
	return 0;
}

static int array_read(int fd, const struct gpt_header *h, uint8_t **ret_array, size_t *ret_len)
{
	size_t len = (size_t)h->num_partition_entries * h->size_of_partition_entry;
	_cleanup_free_ uint8_t *a = malloc(len);
	if (!a)
		return -ENOMEM;
	int r = pread_full(fd, a, len, h->partition_entry_lba * SECTOR);
	if (r < 0)
		return r;
	if (crc32_ieee(0, a, len) != h->partition_entry_array_crc32)
		return -EBADMSG;
	*ret_array = TAKE_PTR(a);
	*ret_len = len;
	return 0;
}

int gpt_read(int fd, struct gpt_disk *ret)
{
	struct gpt_header h;
	uint8_t raw[SECTOR];
	int r = header_read(fd, 1, &h, raw);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *a = NULL;
	size_t len;
	if ((r = array_read(fd, &h, &a, &len)) < 0)
		return r;

	_cleanup_free_ struct gpt_disk *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	gpt_guid_swap(h.disk_guid, d->disk_guid);
	d->first_usable_lba = h.first_usable_lba;
	d->last_usable_lba = h.last_usable_lba;
	d->alternate_lba = h.alternate_lba;
	d->num_entries = h.num_partition_entries;
	for (uint32_t i = 0; i < h.num_partition_entries; i++) {
		struct gpt_entry e;
		memcpy(&e, a + (size_t)i * h.size_of_partition_entry, sizeof(e));
		if (gpt_guid_is_null(e.type_guid))
			continue;
		if (d->n >= ARRAY_SIZE(d->part))
			return -E2BIG;
		struct gpt_part *p = &d->part[d->n++];
		uint64_t s = le64toh(e.starting_lba), end = le64toh(e.ending_lba);
		if (end < s || s < h.first_usable_lba || end > h.last_usable_lba)
			return -EBADMSG;
		p->number = i + 1;
		p->start = s * SECTOR;
		p->size = (end - s + 1) * SECTOR;
		gpt_guid_swap(e.type_guid, p->type_guid);
		gpt_guid_swap(e.unique_guid, p->uuid);
		p->attributes = le64toh(e.attributes);
		for (unsigned k = 0; k < GPT_NAME_UNITS; k++) {
			uint16_t c = le16toh(e.name[k]);
			if (c == 0)
				break;
			p->name[k] = c >= 0x20 && c <= 0x7e ? (char)c : '?';
		}
	}
	*ret = *d;
	return 0;
}

static int sync_fd(int fd)
{
	return fdatasync(fd) < 0 ? -errno : 0;
}

int gpt_relocate_backup(int fd, uint64_t new_disk_size)
{
	if (new_disk_size % SECTOR != 0 || new_disk_size / SECTOR < 2)
		return -EINVAL;
	struct gpt_header h;
	uint8_t primary[SECTOR];
	int r = header_read(fd, 1, &h, primary);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *a = NULL;
	size_t len;
	if ((r = array_read(fd, &h, &a, &len)) < 0)
		return r;

	uint64_t array_sectors = (len + SECTOR - 1) / SECTOR;
	uint64_t new_last = new_disk_size / SECTOR - 1;
	if (new_last < array_sectors + 2)
		return -EINVAL;
	uint64_t new_array_lba = new_last - array_sectors;
	uint64_t new_last_usable = new_array_lba - 1;
	if (new_last_usable < h.first_usable_lba)
		return -EINVAL;
	/* Refuse a size that would cut into a partition. */
	for (uint32_t i = 0; i < h.num_partition_entries; i++) {
		struct gpt_entry e;
		memcpy(&e, a + (size_t)i * h.size_of_partition_entry, sizeof(e));
		if (!gpt_guid_is_null(e.type_guid) && le64toh(e.ending_lba) > new_last_usable)
			return -EINVAL;
	}

	/* Already there, with an intact backup: nothing to do (first boot runs this again). */
	uint64_t old_alt = h.alternate_lba;
	if (old_alt == new_last && h.last_usable_lba == new_last_usable) {
		struct gpt_header b;
		uint8_t braw[SECTOR];
		if (header_read(fd, new_last, &b, braw) == 0 &&
		    b.partition_entry_lba == new_array_lba &&
		    b.partition_entry_array_crc32 == h.partition_entry_array_crc32 &&
		    b.last_usable_lba == new_last_usable) {
			_cleanup_free_ uint8_t *ba = NULL;
			size_t blen;
			if (array_read(fd, &b, &ba, &blen) == 0 && blen == len && memcmp(ba, a, len) == 0)
				return 0;
		}
	}

	/* New headers: the primary's raw sector with fields rewritten, so anything this code
	 * does not know about (a longer header) is kept. */
	uint64_t v64;
	uint32_t v32;
	v64 = htole64(new_last);
	memcpy(primary + offsetof(struct gpt_header, alternate_lba), &v64, 8);
	v64 = htole64(new_last_usable);
	memcpy(primary + offsetof(struct gpt_header, last_usable_lba), &v64, 8);
	v32 = htole32(gpt_header_crc(primary, h.header_size));
	memcpy(primary + offsetof(struct gpt_header, header_crc32), &v32, 4);

	uint8_t backup[SECTOR];
	memcpy(backup, primary, SECTOR);
	v64 = htole64(new_last);
	memcpy(backup + offsetof(struct gpt_header, my_lba), &v64, 8);
	v64 = htole64(1);
	memcpy(backup + offsetof(struct gpt_header, alternate_lba), &v64, 8);
	v64 = htole64(new_array_lba);
	memcpy(backup + offsetof(struct gpt_header, partition_entry_lba), &v64, 8);
	v32 = htole32(gpt_header_crc(backup, h.header_size));
	memcpy(backup + offsetof(struct gpt_header, header_crc32), &v32, 4);

	/* Order, with a barrier after each step, so that power loss at any point leaves a valid
	 * table: 1. the new backup (array, then header) where nothing points yet; 2. the primary
	 * header pointing at it; 3. the protective MBR's size; 4. wipe the old backup header,
	 * which now lies in free space, so no tool mistakes it for a table. */
	if ((r = pwrite_full(fd, a, len, new_array_lba * SECTOR)) < 0 ||
	    (r = pwrite_full(fd, backup, SECTOR, new_last * SECTOR)) < 0 ||
	    (r = sync_fd(fd)) < 0)
		return r;
	if ((r = pwrite_full(fd, primary, SECTOR, 1 * SECTOR)) < 0 || (r = sync_fd(fd)) < 0)
		return r;

	/* A pure protective MBR (one 0xEE record from LBA 1, the others empty) follows the new
	 * size; a hybrid MBR is someone's deliberate choice and stays as it is. */
	struct mbr mbr;
	if ((r = pread_full(fd, &mbr, sizeof(mbr), 0)) < 0)
		return r;
	static const struct mbr_part empty;
	if (le16toh(mbr.signature) == 0xaa55 && mbr.part[0].type == 0xee &&
	    le32toh(mbr.part[0].first_lba) == 1 && memcmp(&mbr.part[1], &empty, sizeof(empty)) == 0 &&
	    memcmp(&mbr.part[2], &empty, sizeof(empty)) == 0 &&
	    memcmp(&mbr.part[3], &empty, sizeof(empty)) == 0) {
		struct mbr_part rec;
		gpt_pmbr_record(new_last, &rec);
		rec.status = mbr.part[0].status;
		if ((r = pwrite_full(fd, &rec, sizeof(rec), offsetof(struct mbr, part))) < 0)
			return r;
	}

	/* The old backup header, if it really is one and lies inside the new disk, apart from
	 * the new backup. */
	if (old_alt != new_last && old_alt > 1 && old_alt < new_array_lba) {
		struct gpt_header o;
		uint8_t oraw[SECTOR];
		if (header_read(fd, old_alt, &o, oraw) == 0) {
			static const uint8_t zero[SECTOR];
			if ((r = pwrite_full(fd, zero, SECTOR, old_alt * SECTOR)) < 0)
				return r;
		}
	}
	return sync_fd(fd);
}

/* Rewrite both headers' array CRC (and so their own CRC) in their raw sectors. */
static void header_set_array_crc(uint8_t raw[SECTOR], uint32_t header_size, uint32_t array_crc)
{
	uint32_t v = htole32(array_crc);
	memcpy(raw + offsetof(struct gpt_header, partition_entry_array_crc32), &v, 4);
	v = htole32(gpt_header_crc(raw, header_size));
	memcpy(raw + offsetof(struct gpt_header, header_crc32), &v, 4);
}

int gpt_resize_partition(int fd, unsigned number, uint64_t new_size)
{
	if (new_size == 0 || new_size % SECTOR != 0)
		return -EINVAL;
	struct gpt_header h, b;
	uint8_t praw[SECTOR], braw[SECTOR];
	int r = header_read(fd, 1, &h, praw);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *a = NULL, *ba = NULL;
	size_t len, blen;
	if ((r = array_read(fd, &h, &a, &len)) < 0)
		return r;
	/* Both copies must be intact before one of them is changed. */
	if ((r = header_read(fd, h.alternate_lba, &b, braw)) < 0)
		return r;
	if ((r = array_read(fd, &b, &ba, &blen)) < 0)
		return r;
	if (blen != len || memcmp(a, ba, len) != 0 || b.alternate_lba != 1 ||
	    b.last_usable_lba != h.last_usable_lba || b.first_usable_lba != h.first_usable_lba)
		return -EBADMSG;

	if (number == 0 || number > h.num_partition_entries)
		return -EINVAL;
	size_t es = h.size_of_partition_entry, idx = number - 1;
	struct gpt_entry e;
	memcpy(&e, a + idx * es, sizeof(e));
	if (gpt_guid_is_null(e.type_guid))
		return -ENOENT;
	uint64_t s = le64toh(e.starting_lba), n = new_size / SECTOR;
	if (s < h.first_usable_lba || s > h.last_usable_lba)
		return -EBADMSG;
	if (n - 1 > h.last_usable_lba - s)
		return -EINVAL; /* past the last usable LBA */
	uint64_t end = s + n - 1;
	for (uint32_t i = 0; i < h.num_partition_entries; i++) {
		struct gpt_entry o;
		memcpy(&o, a + (size_t)i * es, sizeof(o));
		if (i == idx || gpt_guid_is_null(o.type_guid))
			continue;
		if (le64toh(o.starting_lba) <= end && le64toh(o.ending_lba) >= s)
			return -EINVAL; /* would overlap another partition */
	}
	if (le64toh(e.ending_lba) == end)
		return 0;

	e.ending_lba = htole64(end);
	memcpy(a + idx * es, &e, sizeof(e));
	uint32_t crc = crc32_ieee(0, a, len);
	header_set_array_crc(praw, h.header_size, crc);
	header_set_array_crc(braw, b.header_size, crc);

	/* Backup first, then the primary, with barriers: at any moment one of the two copies
	 * is complete and valid (the old one or the new one). */
	if ((r = pwrite_full(fd, a, len, b.partition_entry_lba * SECTOR)) < 0 ||
	    (r = pwrite_full(fd, braw, SECTOR, h.alternate_lba * SECTOR)) < 0 ||
	    (r = sync_fd(fd)) < 0)
		return r;
	if ((r = pwrite_full(fd, a, len, h.partition_entry_lba * SECTOR)) < 0 ||
	    (r = pwrite_full(fd, praw, SECTOR, 1 * SECTOR)) < 0)
		return r;
	return sync_fd(fd);
}
