/* --config FILE and --inventory FILE --name NAME: the device's first-boot config, checked by
 * pmoves-firstboot's validator as a part of a config (validate --part: the image's own
 * firstboot.json completes it on the machine, where the merge is checked as a whole), then
 * copied as pmoves/device.json into the boot partition of the written device with mtools at
 * the partition's byte offset: no mount, no loop device. An inventory entry may hold
 * secrets (auth keys, password hashes): it is given to the validator and mcopy from a memfd
 * (as /proc/PID/fd/N), so it is never in a file that an interrupted run could leave behind. */
#include "flash-config.h"
#include "firstboot-install.h"
#include "gpt.h"
#include "hash.h"
#include "log.h"
#include "mbr.h"
#include "run.h"
#include "table.h"
#include "util.h"

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <json-c/json.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define CONFIG_MAX (1u << 20)
#define HEAD (1u << 20)

static int parse_strict(const char *file, const char *buf, size_t len, json_object **ret)
{
	if (strlen(buf) != len || len > INT_MAX) {
		log_error("'%s' is not JSON (a NUL byte, or too large)", file);
		return -EINVAL;
	}
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success || buf[end + strspn(buf + end, " \t\r\n")] != '\0') {
		json_object_put(o);
		log_error("'%s' is not valid JSON (%s)", file,
			  jerr == json_tokener_success ? "text after the end" : json_tokener_error_desc(jerr));
		return -EINVAL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		log_error("'%s': the top level must be a JSON object", file);
		return -EINVAL;
	}
	*ret = o;
	return 0;
}

/* A rule naming the disk a network install writes: serial:S, wwn:W or path:P, in characters a
 * kernel command line and an iPXE script take as they are. */
static bool disk_rule_ok(const char *s)
{
	size_t n = strlen(s);
	const char *v = str_starts_with(s, "serial:") ? s + 7
			: str_starts_with(s, "wwn:")  ? s + 4
			: str_starts_with(s, "path:") ? s + 5
						      : NULL;
	return v && *v && n <= 256 &&
	       strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/+-") == strlen(v);
}

/* "netboot": {"mode": "live"|"install", "disk": RULE}, both optional: for `serve`. */
static int netboot_check(const char *file, size_t i, json_object *nb)
{
	if (!json_object_is_type(nb, json_type_object)) {
		log_error("%s: .devices[%zu].netboot: not an object", file, i);
		return -EINVAL;
	}
	json_object_object_foreach(nb, key, val) {
		const char *v = json_object_get_string(val);
		bool str = json_object_is_type(val, json_type_string);
		if (STREQ(key, "mode")) {
			if (!str || (!STREQ(v, "live") && !STREQ(v, "install"))) {
				log_error("%s: .devices[%zu].netboot.mode: not \"live\" or \"install\"", file, i);
				return -EINVAL;
			}
		} else if (STREQ(key, "disk")) {
			if (!str || !disk_rule_ok(v)) {
				log_error("%s: .devices[%zu].netboot.disk: not serial:S, wwn:W or path:P (letters, "
					  "digits and ._:/+- only, 256 characters at most)",
					  file, i);
				return -EINVAL;
			}
		} else {
			_cleanup_free_ char *k = str_printable(key, strlen(key), NULL);
			log_error("%s: .devices[%zu].netboot.%s: unknown key (mode, disk)", file, i, k ? k : "?");
			return -EINVAL;
		}
	}
	return 0;
}

/* The inventory's shape: {"devices": [{"name", "mac"?, "netboot"?, "config"}]}, names and MACs unique.
 * The config of the entry named NAME, or else of the one whose "mac" is MAC (any case), into
 * *ret (a reference into ROOT), its index into *ret_index. -ENOENT: no such entry (with MAC:
 * not logged, a machine the inventory does not know). */
static int inventory_entry(const char *file, json_object *root, const char *name, const char *mac_want,
			   json_object **ret, size_t *ret_index)
{
	json_object *devs = NULL;
	json_object_object_foreach(root, key, val) {
		if (!STREQ(key, "devices")) {
			_cleanup_free_ char *k = str_printable(key, strlen(key), NULL);
			log_error("%s: .%s: unknown key (an inventory has \"devices\" only)", file, k ? k : "?");
			return -EINVAL;
		}
		devs = val;
	}
	if (!json_object_is_type(devs, json_type_array)) {
		log_error("%s: .devices: missing, or not an array", file);
		return -EINVAL;
	}
	size_t n = json_object_array_length(devs);
	if (n > INVENTORY_MAX_DEVICES) {
		log_error("%s: .devices: %zu entries, at most %d", file, n, INVENTORY_MAX_DEVICES);
		return -EINVAL;
	}
	json_object *found = NULL;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(devs, i), *nm = NULL, *mac = NULL, *cfg = NULL;
		if (!json_object_is_type(e, json_type_object)) {
			log_error("%s: .devices[%zu]: not an object", file, i);
			return -EINVAL;
		}
		json_object_object_foreach(e, ekey, eval) {
			if (STREQ(ekey, "name"))
				nm = eval;
			else if (STREQ(ekey, "mac"))
				mac = eval;
			else if (STREQ(ekey, "config"))
				cfg = eval;
			else if (STREQ(ekey, "netboot")) {
				if (netboot_check(file, i, eval) < 0)
					return -EINVAL;
			} else {
				_cleanup_free_ char *k = str_printable(ekey, strlen(ekey), NULL);
				log_error("%s: .devices[%zu].%s: unknown key (name, mac, config, netboot)", file, i,
					  k ? k : "?");
				return -EINVAL;
			}
		}
		const char *s = json_object_get_string(nm);
		if (!json_object_is_type(nm, json_type_string) || !valid_name(s, 64)) {
			log_error("%s: .devices[%zu].name: missing, or not a name ([A-Za-z0-9._-], 64 at most)", file, i);
			return -EINVAL;
		}
		if (mac && (!json_object_is_type(mac, json_type_string) || !mac_valid(json_object_get_string(mac)))) {
			log_error("%s: .devices[%zu].mac: not a MAC address (like 52:54:00:12:34:56)", file, i);
			return -EINVAL;
		}
		if (!json_object_is_type(cfg, json_type_object)) {
			log_error("%s: .devices[%zu].config: missing, or not an object", file, i);
			return -EINVAL;
		}
		for (size_t k = 0; k < i; k++) {
			json_object *o = json_object_array_get_idx(devs, k), *on, *om;
			json_object_object_get_ex(o, "name", &on);
			if (STREQ(json_object_get_string(on), s)) {
				log_error("%s: .devices[%zu].name: '%s' is also .devices[%zu]'s", file, i, s, k);
				return -EINVAL;
			}
			if (mac && json_object_object_get_ex(o, "mac", &om) &&
			    strcasecmp(json_object_get_string(om), json_object_get_string(mac)) == 0) {
				log_error("%s: .devices[%zu].mac: also .devices[%zu]'s", file, i, k);
				return -EINVAL;
			}
		}
		bool match = name ? STREQ(s, name)
				  : mac && strcasecmp(json_object_get_string(mac), mac_want) == 0;
		if (match && !found) {
			found = cfg;
			*ret_index = i;
		}
	}
	if (!found && !name)
		return -ENOENT;
	if (!found) {
		_cleanup_free_ char *shown = str_printable(name, strlen(name), NULL);
		log_error("no device '%s' in inventory '%s'", shown ? shown : "?", file);
		return -EINVAL;
	}
	*ret = found;
	return 0;
}

static int validate(const char *shown, const char *prefix, const char *file)
{
	_cleanup_free_ char *err = NULL;
	/* A part: the image's own firstboot.json completes it on the machine, where the merge is
	 * checked as a whole (required keys, rules across keys). */
	int r = firstboot_validate_file(shown, prefix, file, true, &err);
	if (r == -EINVAL)
		log_error("invalid device config: %s", err ? err : shown);
	else if (r < 0)
		log_error("%s", err ? err : "cannot check the device config");
	return r;
}

static int config_load(const char *config, const char *inventory, const char *name, const char *mac,
		       struct flash_config *ret)
{
	const char *path = config ? config : inventory;
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = read_file(path, config ? CONFIG_MAX : INVENTORY_MAX_FILE, &buf, &len);
	if (r < 0) {
		log_errno(r, "cannot read %s '%s'", config ? "config" : "inventory", path);
		return r == -ENOENT ? r : -EINVAL;
	}
	json_object *root = NULL;
	r = parse_strict(path, buf, len, &root);
	explicit_bzero(buf, len);
	if (r < 0)
		return r;
	struct flash_config c = { 0 };
	if (config) {
		json_object_put(root);
		/* a relative name goes to programs as ./NAME: '-x.json' is no option to them */
		if (!(c.file = config[0] == '/' ? strdup(config) : strdupf("./%s", config)))
			return -ENOMEM;
		if ((r = validate(config, "", c.file)) < 0) {
			flash_config_done(&c);
			return r;
		}
		*ret = c;
		return 0;
	}
	json_object *entry;
	size_t index;
	r = inventory_entry(inventory, root, name, mac, &entry, &index);
	if (r == -ENOENT) {
		json_object_put(root);
		return r;
	}
	if (r == 0) {
		const char *text = json_object_to_json_string_ext(entry, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
		int fd = memfd_create("pmoves-device.json", MFD_CLOEXEC);
		if (fd < 0)
			r = log_errno(-errno, "cannot make a memory file for the device config");
		else {
			c.has_memfd = true, c.memfd = fd;
			r = pwrite_full(fd, text, strlen(text), 0);
			if (r < 0)
				log_errno(r, "cannot write the device config to a memory file");
			else if (!(c.file = strdupf("/proc/%d/fd/%d", (int)getpid(), fd)))
				r = -ENOMEM;
		}
	}
	_cleanup_free_ char *prefix = strdupf(".devices[%zu].config", r == 0 ? index : 0);
	if (r == 0)
		r = prefix ? validate(inventory, prefix, c.file) : -ENOMEM;
	json_object_put(root); /* json-c does not wipe: the text was ours only in memory */
	if (r < 0) {
		flash_config_done(&c);
		return r;
	}
	*ret = c;
	return 0;
}

int flash_config_load(const char *config, const char *inventory, const char *name, struct flash_config *ret)
{
	return config_load(config, inventory, name, NULL, ret);
}

int inventory_config_by_mac(const char *inventory, const char *mac, char **ret_text, size_t *ret_len)
{
	_cleanup_(flash_config_done) struct flash_config c = { .memfd = -1 };
	int r = config_load(NULL, inventory, NULL, mac, &c);
	if (r < 0)
		return r;
	struct stat st;
	if (fstat(c.memfd, &st) < 0)
		return -errno;
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	if ((r = pread_full(c.memfd, buf, (size_t)st.st_size, 0)) < 0)
		return r;
	buf[st.st_size] = '\0';
	*ret_len = (size_t)st.st_size;
	*ret_text = TAKE_PTR(buf);
	return 0;
}

void inventory_macs_free(struct inventory_mac *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++) {
		if (m[i].text)
			explicit_bzero(m[i].text, m[i].len);
		free(m[i].text);
		free(m[i].disk);
	}
	free(m);
}

int inventory_load_macs(const char *inventory, struct inventory_mac **ret, size_t *ret_n)
{
	_cleanup_free_ char *buf = NULL;
	size_t len, n = 0;
	int r = read_file(inventory, INVENTORY_MAX_FILE, &buf, &len);
	if (r < 0) {
		log_errno(r, "cannot read inventory '%s'", inventory);
		return r == -ENOENT ? r : -EINVAL;
	}
	json_object *root = NULL, *devs = NULL, *entry;
	size_t index;
	r = parse_strict(inventory, buf, len, &root);
	explicit_bzero(buf, len);
	if (r < 0)
		return r;
	/* the shape, every entry: a MAC no entry has */
	r = inventory_entry(inventory, root, NULL, "", &entry, &index);
	if (r == -ENOENT)
		r = 0;
	json_object_object_get_ex(root, "devices", &devs);
	size_t total = r == 0 ? json_object_array_length(devs) : 0;
	struct inventory_mac *m = total ? calloc(total, sizeof(*m)) : NULL;
	if (total && !m)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < total; i++) {
		json_object *mac;
		if (!json_object_object_get_ex(json_object_array_get_idx(devs, i), "mac", &mac))
			continue;
		const char *s = json_object_get_string(mac);
		for (size_t k = 0; k < 17; k++)
			m[n].mac[k] = (char)tolower((unsigned char)s[k]);
		json_object *nb, *v;
		if (json_object_object_get_ex(json_object_array_get_idx(devs, i), "netboot", &nb)) {
			if (json_object_object_get_ex(nb, "mode", &v))
				snprintf(m[n].mode, sizeof(m[n].mode), "%s", json_object_get_string(v));
			if (json_object_object_get_ex(nb, "disk", &v) && !(m[n].disk = strdup(json_object_get_string(v))))
				r = -ENOMEM;
		}
		if (r == 0)
			r = inventory_config_by_mac(inventory, s, &m[n].text, &m[n].len);
		if (r == 0)
			n++;
	}
	json_object_put(root);
	if (r < 0) {
		inventory_macs_free(m, n);
		return r;
	}
	*ret = m;
	*ret_n = n;
	return 0;
}

/* The boot partition in the image's first MiB (HEAD): GPT, else MBR. */
static int find_in_head(int fd, uint64_t image_size, uint64_t *ret_off, uint64_t *ret_size)
{
	const struct part_type *want[] = { part_type_find("esp"), part_type_find("firmware") };
	struct mbr m;
	int r = pread_full(fd, &m, sizeof(m), 0);
	if (r < 0)
		return r;
	if (le16toh(m.signature) != 0xaa55)
		return -ENOENT;
	uint64_t off = 0, size = 0;
	if (m.part[0].type == 0xee) {
		_cleanup_free_ struct gpt_disk *d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		if ((r = gpt_read(fd, d)) < 0)
			return r == -EIO ? -ENOENT : r;
		for (size_t w = 0; w < ARRAY_SIZE(want) && !size; w++) {
			uint8_t g[16];
			if (!want[w] || !want[w]->gpt || uuid_parse(want[w]->gpt, g) < 0)
				continue;
			for (unsigned i = 0; i < d->n && !size; i++)
				if (memcmp(d->part[i].type_guid, g, 16) == 0)
					off = d->part[i].start, size = d->part[i].size;
		}
	} else {
		for (size_t w = 0; w < ARRAY_SIZE(want) && !size; w++)
			for (size_t i = 0; i < 4 && !size; i++)
				if (want[w] && m.part[i].type == want[w]->mbr && m.part[i].sectors)
					off = (uint64_t)le32toh(m.part[i].first_lba) * 512, size = (uint64_t)le32toh(m.part[i].sectors) * 512;
	}
	if (!size)
		return -ENOENT;
	if (off > image_size || size > image_size - off)
		return -EBADMSG;
	*ret_off = off, *ret_size = size;
	return 0;
}

int flash_config_find_boot(struct flash_image *img, struct flash_config *c)
{
	_cleanup_close_ int mfd = memfd_create("pmoves-image-head", MFD_CLOEXEC);
	_cleanup_free_ char *buf = malloc(HEAD);
	if (mfd < 0 || !buf)
		return log_errno(mfd < 0 ? -errno : -ENOMEM, "cannot read the partition table of '%s'", img->path);
	size_t n = 0, got;
	int r = 0;
	while (n < HEAD && (r = flash_source_read(&img->src, buf + n, HEAD - n, &got)) == 0 && got)
		n += got;
	int r2 = flash_source_rewind(&img->src);
	if (r == 0)
		r = r2;
	if (r == 0)
		r = pwrite_full(mfd, buf, n, 0);
	if (r == 0)
		r = find_in_head(mfd, img->size, &c->boot_offset, &c->boot_size);
	if (r == -ENOENT)
		log_error("image '%s' has no boot partition (an EFI System or FAT firmware partition) for the device config",
			  img->path);
	else if (r == -EBADMSG)
		log_error("image '%s': its boot partition lies past its end", img->path);
	else if (r < 0)
		log_errno(r, "cannot read the partition table of '%s'", img->path);
	return r;
}

int flash_config_write(const struct flash_config *c, int fd, const char *target)
{
	char *const env[] = { "MTOOLS_SKIP_CHECK=1", NULL };
	/* The FAT there must fit its partition, or mtools, which trusts the FAT's own size, could
	 * write past it. */
	uint8_t bs[512];
	if (pread(fd, bs, sizeof(bs), (off_t)c->boot_offset) != (ssize_t)sizeof(bs))
		return log_errno(-EIO, "cannot read the boot partition of '%s'", target);
	uint64_t sector = (uint64_t)bs[11] | (uint64_t)bs[12] << 8, total = (uint64_t)bs[19] | (uint64_t)bs[20] << 8;
	if (total == 0)
		total = (uint64_t)bs[32] | (uint64_t)bs[33] << 8 | (uint64_t)bs[34] << 16 | (uint64_t)bs[35] << 24;
	if (bs[510] != 0x55 || bs[511] != 0xaa || sector < 512 || sector > 4096 || (sector & (sector - 1)) ||
	    total == 0 || total * sector > c->boot_size) {
		log_error("the boot partition of '%s' does not hold a FAT of its size (%" PRIu64 " sectors of %" PRIu64
			  " bytes in %" PRIu64 " bytes): pmoves/device.json not written",
			  target, total, sector, c->boot_size);
		return -EBADMSG;
	}
	/* The device that was checked, claimed and written, by its fd: not its name again. */
	_cleanup_free_ char *img = strdupf("/proc/%d/fd/%d@@%" PRIu64, (int)getpid(), fd, c->boot_offset);
	if (!img)
		return -ENOMEM;
	/* mmd fails when pmoves/ is there already: mcopy says whether it is there now */
	(void)run_argv((char *[]){ "mmd", "-D", "s", "-i", img, "::/pmoves", NULL }, &(struct run_opts){ .env = env });
	_cleanup_free_ char *out = NULL;
	int r = run_argv((char *[]){ "mcopy", "-o", "-i", img, c->file, "::/pmoves/device.json", NULL },
			 &(struct run_opts){ .env = env, .capture = &out, .capture_stderr = true });
	if (r == 127)
		return log_errno(-ENOENT, "'mcopy' is not installed (package mtools)");
	if (r != 0) {
		char *nl = out ? strchr(out, '\n') : NULL;
		if (nl)
			*nl = '\0';
		log_error("writing pmoves/device.json to '%s' failed: mcopy exited %d%s%s", target, r, out && *out ? ": " : "",
			  out ? out : "");
		return -EIO;
	}
	return 0;
}

void flash_config_done(struct flash_config *c)
{
	if (c->has_memfd)
		close(c->memfd);
	free(c->file);
	*c = (struct flash_config){ 0 };
}
