/* The per-device config a flash writes as pmoves/device.json on the device's boot partition:
 * --config FILE, or one entry of the fleet's inventory (docs/flash.md). Checked with
 * pmoves-firstboot's own validator before anything is written. */
#ifndef PMOVES_FLASH_CONFIG_H
#define PMOVES_FLASH_CONFIG_H

#include "flash.h"

#include <stdint.h>

/* The most entries an inventory may hold, and its largest size. */
#define INVENTORY_MAX_DEVICES 4096
#define INVENTORY_MAX_FILE (16u << 20)

struct flash_config {
	char *file;     /* what is copied: FILE itself, or the entry's memfd as /proc/PID/fd/N */
	bool has_memfd;
	int memfd;      /* with has_memfd: the entry, in memory only (never on a disk) */
	uint64_t boot_offset, boot_size; /* the boot partition in the image, bytes */
};

/* Load and check CONFIG, or entry NAME of INVENTORY. Logs the problem. -EINVAL: invalid (the
 * message names the file and the JSON path); -ENOENT: a file or the entry is missing. */
int flash_config_load(const char *config, const char *inventory, const char *name, struct flash_config *ret);
/* The boot partition (ESP, else the FAT firmware partition) in IMG's partition table, GPT or
 * MBR, into C. Reads the image's first MiB (and rewinds it). Logs; -ENOENT: none. */
int flash_config_find_boot(struct flash_image *img, struct flash_config *c);
/* pmoves/device.json on the boot partition of the device open as FD (TARGET: its name for
 * messages), through mtools at the partition's offset, given the fd (/proc/PID/fd/N) so it
 * writes where the image went, whatever the name points to now. Logs. */
int flash_config_write(const struct flash_config *c, int fd, const char *target);
/* The config of INVENTORY's entry whose "mac" is MAC (any case), checked as flash_config_load
 * checks it, as the JSON text a machine is given: 0, -ENOENT (no such entry: not logged),
 * -EINVAL (an invalid inventory or config: logged). */
int inventory_config_by_mac(const char *inventory, const char *mac, char **ret_text, size_t *ret_len);
/* Every entry of INVENTORY with a "mac", its config checked as inventory_config_by_mac checks
 * it: *ret an array of *ret_n (MAC in lower case, the config's text). Logs; -ENOENT: no such
 * file, -EINVAL: invalid. */
struct inventory_mac {
	char mac[18];
	char *text;
	size_t len;
	char mode[8]; /* "netboot": {"mode"}: "live", "install", or "" */
	char *disk;   /* "netboot": {"disk"}: the install's disk rule, or NULL */
};
int inventory_load_macs(const char *inventory, struct inventory_mac **ret, size_t *ret_n);
/* The texts zeroed (they may hold secrets) and freed. */
void inventory_macs_free(struct inventory_mac *m, size_t n);
/* The entry's memfd closed (its pages freed), the rest freed. */
void flash_config_done(struct flash_config *c);

#endif
