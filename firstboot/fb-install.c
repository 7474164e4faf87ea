/* netboot install: the image written to this machine's disk from the network (README, "Network
 * boot"), by the flash engine `pmoves-image flash` uses (lib/flash.c) with its rules: only the
 * bmap's ranges written, each checked against the bmap's SHA-256 as it is decompressed, the
 * whole disk read back with O_DIRECT after. On the console:
 *
 *   pmoves-install: step=<check|disk|fetch|modules|installed|write|config|boot> state=<start|ok|failed> [detail]
 *   pmoves-install: done disk=DEV seconds=S: rebooting
 *   pmoves-install: stopped: WHY
 *
 * Nothing is written before every check that can come first has passed: the image boots on
 * this machine's firmware (pmoves.image_firmware=uefi and a BIOS netboot: refused), the disk is
 * chosen (fb-disk.c: the only fixed disk, or pmoves.disk=serial:|wwn:|path:), the bmap matches
 * its pin and the image fits the disk, the config matches its pin. Then:
 *
 *  1. the disk's first MiB is zeroed: from here on it holds no partition table, old or new;
 *  2. the image streams from pmoves.image (zstd) into the mapped ranges past that MiB, each
 *     range checked against the bmap as it comes: a range that differs stops the write there,
 *     and nothing after it is written;
 *  3. the download's SHA-256 is checked against pmoves.image_sha256;
 *  4. only then is the first MiB (the GPT) written, and the disk read back and verified;
 *  5. the config becomes the ESP's pmoves/device.json, the ESP's pmoves/install.json names the
 *     image, the boot entry is made (first in BootOrder, and BootNext), and the machine
 *     reboots into the installed system.
 *
 * A disk whose ESP's pmoves/install.json names the pinned image already is not written again:
 * the boot entry is made and the machine reboots into it (a machine whose firmware keeps the
 * network first comes back here on every boot). A new image installs.
 *
 * A failure at any step stops the machine in the initramfs with the reason on the console,
 * and leaves the disk without a partition table (its first MiB zeros): it never boots
 * half-written. */
#include "bmap-read.h"
#include "download.h"
#include "fb-config.h"
#include "fb-disk.h"
#include "fb-netboot.h"
#include "firstboot.h"
#include "flash.h"
#include "gpt.h"
#include "log.h"
#include "util.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>

#define NI "pmoves-install"
#define HEAD (1u << 20) /* the GPT and the space before the first partition */
#define ESP_DIR NB_RAM_DIR "/esp"
#define EFIVARS "/sys/firmware/efi/efivars"
#define CONFIG_MAX (1u << 20)
#define INSTALL_NOTE ESP_DIR "/pmoves/install.json"
#define say(...) nb_say(NI, __VA_ARGS__)

struct install {
	char *image, *image_pin, *bmap_url, *bmap_pin, *config, *config_pin, *firmware, *rule;
	struct fb_disk *disks;
	size_t n_disks;
	const struct fb_disk *disk;
	struct bmap bm;
	int disk_fd;
	bool efi;
	/* the download, on its own thread, into a pipe the flash engine reads */
	pthread_t thread;
	bool running;
	int pipe_w;
	int dl_r;
	char *dl_error;
};

static void install_done(struct install *in)
{
	free(in->image), free(in->image_pin), free(in->bmap_url), free(in->bmap_pin);
	free(in->config), free(in->config_pin), free(in->firmware), free(in->rule);
	fb_disks_free(in->disks, in->n_disks);
	bmap_done(&in->bm);
	if (in->disk_fd >= 0)
		close(in->disk_fd);
	free(in->dl_error);
}

static int stopped(const char *why)
{
	printf("%s: stopped: %s\n", NI, why);
	fflush(stdout);
	return FB_EXIT_FAILED;
}

/* ---- before anything is written ---- */

static int read_params(const char *cmdline, struct install *in)
{
	int r = nb_pinned_url(cmdline, "pmoves.image", "a network install", false, &in->image, &in->image_pin);
	if (r == FB_EXIT_OK)
		r = nb_pinned_url(cmdline, "pmoves.bmap", "a network install", false, &in->bmap_url, &in->bmap_pin);
	if (r == FB_EXIT_OK)
		r = nb_pinned_url(cmdline, "pmoves.config", "a machine's config", true, &in->config, &in->config_pin);
	if (r != FB_EXIT_OK)
		return r;
	in->firmware = fb_cmdline_get(cmdline, "pmoves.image_firmware");
	in->rule = fb_cmdline_get(cmdline, "pmoves.disk");
	/* iPXE leaves an unset ${pmoves-disk} empty: "pmoves.disk=" is no rule */
	if (in->rule && !*in->rule) {
		free(in->rule);
		in->rule = NULL;
	}
	return FB_EXIT_OK;
}

static int check_firmware(struct install *in)
{
	in->efi = access("/sys/firmware/efi", F_OK) == 0;
	say("check", "start", "firmware=%s image=%s", in->efi ? "uefi" : "bios", in->firmware ? in->firmware : "any");
	if (in->firmware && STREQ(in->firmware, "uefi") && !in->efi) {
		say("check", "failed", "the image boots only by UEFI, and this machine netbooted by BIOS: nothing written");
		return stopped("set the machine's firmware to UEFI and boot it from the network again");
	}
	say("check", "ok", NULL);
	return FB_EXIT_OK;
}

static int pick_disk(struct install *in)
{
	_cleanup_free_ char *err = NULL, *desc = NULL;
	size_t i;
	say("disk", "start", "rule=%s", in->rule ? in->rule : "(the only fixed disk)");
	int r = fb_disks_scan("", &in->disks, &in->n_disks);
	if (r < 0) {
		say("disk", "failed", "cannot list the disks: %s", strerror(-r));
		return stopped("no disk chosen: nothing written");
	}
	r = fb_disk_pick(in->disks, in->n_disks, in->rule, &i, &err);
	if (r < 0) {
		say("disk", "failed", "%s", err ? err : strerror(-r));
		return stopped("no disk chosen: nothing written");
	}
	in->disk = &in->disks[i];
	desc = fb_disk_describe(in->disk);
	say("disk", "ok", "disk=%s %s", in->disk->dev, desc ? desc : "");
	return FB_EXIT_OK;
}

/* URL (pinned by PIN) into NB_RAM_DIR/NAME, 0600, at most MAX bytes. */
static int fetch_small(const char *url, const char *pin, const char *name, uint64_t max, char **ret_path)
{
	_cleanup_free_ char *path = strdupf("%s/%s", NB_RAM_DIR, name), *err = NULL, *shown = url_shown(url);
	if (!path || !shown)
		return -ENOMEM;
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		say("fetch", "failed", "cannot create '%s': %s", path, strerror(errno));
		return -errno;
	}
	struct download_opts o = { .any_http = true, .attempts = 6, .max_size = max, .user_agent = NI,
				   .retrying = nb_retrying, .ctx = (void *)NI };
	int r = download_fd(fd, url, pin, &o, &err);
	if (r < 0) {
		say("fetch", "failed", "%s", err ? err : strerror(-r));
		return r;
	}
	say("fetch", "ok", "url=%s sha256=%s", shown, pin);
	*ret_path = TAKE_PTR(path);
	return 0;
}

static int fetch_maps(struct install *in, char **ret_config)
{
	_cleanup_free_ char *bmap_path = NULL, *why = NULL;
	say("fetch", "start", "bmap and config");
	int r = fetch_small(in->bmap_url, in->bmap_pin, "image.bmap", BMAP_MAX_FILE, &bmap_path);
	if (r == 0 && in->config)
		r = fetch_small(in->config, in->config_pin, "device.json", CONFIG_MAX, ret_config);
	if (r < 0)
		return stopped("a file the install needs did not come as pinned: nothing written");
	r = bmap_load(bmap_path, &in->bm, &why);
	if (r < 0) {
		say("fetch", "failed", "the bmap is refused: %s", why ? why : strerror(-r));
		return stopped("nothing written");
	}
	if (in->bm.image_size > in->disk->size) {
		char need[24], have[24];
		format_size_human(in->bm.image_size, need);
		format_size_human(in->disk->size, have);
		say("fetch", "failed", "the image is %s, the disk %s holds %s", need, in->disk->dev, have);
		return stopped("the disk is too small: nothing written");
	}
	return FB_EXIT_OK;
}

/* ---- the write ---- */

static void *download_thread(void *arg)
{
	struct install *in = arg;
	/* Resumed with a Range request when the connection drops; a whole image may take hours
	 * on a slow link, and a stalled one is cut by the reader's failure. */
	struct download_opts o = { .any_http = true, .attempts = 8, .timeout = 24 * 3600,
				   .max_size = 2 * in->bm.image_size + (UINT64_C(1) << 20), .user_agent = NI,
				   .retrying = nb_retrying, .ctx = (void *)NI };
	in->dl_r = download_stream(in->pipe_w, in->image, in->image_pin, &o, &in->dl_error);
	close(in->pipe_w);
	in->pipe_w = -1;
	return NULL;
}

static int download_join(struct install *in)
{
	if (in->running) {
		pthread_join(in->thread, NULL);
		in->running = false;
	}
	return in->dl_r;
}

/* flash_opts.before_head: everything but the first MiB is on the disk; the download must have
 * been the pinned image. */
static int before_head(void *ctx)
{
	struct install *in = ctx;
	int r = download_join(in);
	if (r < 0)
		say("write", "failed", "%s", in->dl_error ? in->dl_error : strerror(-r));
	return r;
}

static int write_image(struct install *in)
{
	_cleanup_free_ char *shown = url_shown(in->image), *bshown = url_shown(in->bmap_url);
	double t0 = now_seconds();
	in->disk_fd = open(in->disk->dev, O_RDWR | O_EXCL | O_CLOEXEC);
	uint64_t size = 0;
	if (in->disk_fd < 0 || ioctl(in->disk_fd, BLKGETSIZE64, &size) < 0) {
		say("write", "failed", "cannot open '%s': %s", in->disk->dev, strerror(errno));
		return stopped("nothing written");
	}
	int p[2];
	if (!shown || !bshown || pipe2(p, O_CLOEXEC) < 0)
		return stopped("out of resources: nothing written");
	struct flash_image img;
	int r = flash_image_open_stream(p[0], FLASH_ZSTD, shown, bshown, &in->bm, &img); /* takes p[0] */
	if (r < 0) {
		close(p[1]);
		return stopped("out of memory: nothing written");
	}
	in->pipe_w = p[1];
	if (pthread_create(&in->thread, NULL, download_thread, in) != 0) {
		flash_image_close(&img);
		close(p[1]);
		return stopped("cannot start the download: nothing written");
	}
	in->running = true;
	say("write", "start", "url=%s disk=%s bytes=%" PRIu64 " mapped=%" PRIu64, shown, in->disk->dev,
	    in->bm.image_size, in->bm.mapped_bytes);
	struct flash_target t = { .path = in->disk->dev, .fd = in->disk_fd, .is_blk = true, .dev_size = size };
	struct flash_opts o = { .verify = true, .hold_head = HEAD, .before_head = before_head, .ctx = in };
	r = flash_write(&img, &t, 1, &o);
	/* The reader's end closed first: a download still writing gets EPIPE and stops. */
	flash_image_close(&img);
	int d = download_join(in);
	if (r == 0 && t.error)
		r = t.error;
	if (r < 0) {
		/* r == d: before_head said it. A download that failed cut the stream short; one that
		 * got EPIPE was stopped by the write's failure, which the engine logged. */
		if (d < 0 && d != -EPIPE && r != d)
			say("write", "failed", "the download: %s", in->dl_error ? in->dl_error : strerror(-d));
		else if (r != d)
			say("write", "failed", "%s", t.why ? t.why : strerror(-r));
		free(t.why);
		return stopped("the disk's first MiB is zeros: it holds no partition table and does not boot");
	}
	free(t.why);
	say("write", "ok", "disk=%s written=%" PRIu64 " verified=yes sha256=%s seconds=%.1f", in->disk->dev, t.written,
	    in->image_pin, now_seconds() - t0);
	return FB_EXIT_OK;
}

/* ---- after ---- */

/* Zeros over the disk's first MiB again: a failure after the image was written. */
static int unboot(struct install *in, const char *why)
{
	_cleanup_free_ uint8_t *zero = calloc(1, HEAD);
	if (zero && pwrite_full(in->disk_fd, zero, HEAD, 0) == 0 && fsync(in->disk_fd) == 0) {
		_cleanup_free_ char *msg = strdupf("%s: the disk's first MiB is zeros again: it does not boot", why);
		return stopped(msg ? msg : why);
	}
	_cleanup_free_ char *msg = strdupf("%s; zeroing the disk's first MiB failed too: it may boot half-configured", why);
	return stopped(msg ? msg : why);
}

/* The ESP of the written disk mounted on ESP_DIR, through a loop device over its bytes (no
 * wait for udev to make the partition's node). *ret_loop: keep it open until unmounted. */
static int mount_esp(struct install *in, int fd, bool rw, int *ret_loop)
{
	_cleanup_free_ struct gpt_disk *g = malloc(sizeof(*g));
	if (!g)
		return -ENOMEM;
	int r = gpt_read(fd, g);
	if (r < 0) {
		if (rw)
			say("config", "failed", "cannot read the GPT written to '%s': %s", in->disk->dev, strerror(-r));
		return r;
	}
	const struct gpt_part *esp = NULL;
	for (unsigned i = 0; i < g->n && !esp; i++)
		if (memcmp(g->part[i].type_guid, gpt_type_esp, 16) == 0)
			esp = &g->part[i];
	if (!esp) {
		if (rw)
			say("config", "failed", "the image has no EFI System partition");
		return -ENOENT;
	}
	char dev[32];
	int lfd = nb_loop_attach(fd, esp->start, esp->size, rw, "pmoves-esp", dev);
	if (lfd < 0 || ((mkdir(ESP_DIR, 0700) < 0 && errno != EEXIST) ||
			mount(dev, ESP_DIR, "vfat", MS_NOSUID | MS_NODEV | MS_NOEXEC | (rw ? 0 : MS_RDONLY),
			      "fmask=0177,dmask=0077") < 0)) {
		r = lfd < 0 ? lfd : -errno;
		if (rw)
			say("config", "failed", "cannot mount the ESP (partition %u of '%s'): %s", esp->number,
			    in->disk->dev, strerror(-r));
		if (lfd >= 0)
			close(lfd);
		return r;
	}
	*ret_loop = lfd;
	return 0;
}

static int umount_esp(int lfd)
{
	sync();
	int r = umount(ESP_DIR) < 0 ? -errno : 0;
	close(lfd);
	return r;
}

/* INSTALL_NOTE: which image this disk holds (installed_boot reads it). */
static int write_note(struct install *in)
{
	_cleanup_free_ char *note = strdupf("{ \"image_sha256\": \"%s\", \"bmap_sha256\": \"%s\", \"installed\": %lld }\n",
					    in->image_pin, in->bmap_pin, (long long)time(NULL));
	int r = note ? write_file_atomic(INSTALL_NOTE, note, strlen(note), 0600) : -ENOMEM;
	if (r < 0)
		say("config", "failed", "cannot write '%s': %s", INSTALL_NOTE, strerror(-r));
	return r;
}

static int write_config(const char *config)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = read_file(config, CONFIG_MAX, &text, &len);
	if (r == 0 && mkdir(ESP_DIR "/pmoves", 0700) < 0 && errno != EEXIST)
		r = -errno;
	if (r == 0)
		r = write_file_atomic(ESP_DIR "/pmoves/device.json", text, len, 0600);
	if (r < 0) {
		say("config", "failed", "cannot write pmoves/device.json on the ESP: %s", strerror(-r));
		return r;
	}
	/* the secrets stay in RAM no longer than needed */
	unlink(config);
	say("config", "ok", "pmoves/device.json bytes=%zu", len);
	return 0;
}

static int boot_entry(struct install *in)
{
	if (!in->efi) {
		say("boot", "ok", "not a UEFI machine: the firmware boots the disk by its own order");
		return 0;
	}
	if (nb_load_modules(NI, "order.efi") < 0)
		return -ENOENT;
	if (mount("efivarfs", EFIVARS, "efivarfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 && errno != EBUSY) {
		int r = -errno;
		say("boot", "failed", "cannot mount efivarfs on '%s': %s", EFIVARS, strerror(-r));
		return r;
	}
	_cleanup_free_ char *msg = NULL;
	int r = fb_efiboot_install(in->disk->dev, ESP_DIR, &msg);
	if (r < 0) {
		say("boot", "failed", "%s", msg ? msg : strerror(-r));
		return r;
	}
	say("boot", "ok", "%s", msg ? msg : "");
	return 0;
}

static int configure(struct install *in, const char *config)
{
	say("config", "start", "%s", config ? "device.json" : "none given: the image's own config");
	int lfd = -1;
	int r = mount_esp(in, in->disk_fd, true, &lfd);
	if (r == 0 && config)
		r = write_config(config);
	if (r == 0 && !config)
		say("config", "ok", NULL);
	if (r == 0)
		r = write_note(in);
	if (r == 0) {
		say("boot", "start", NULL);
		r = boot_entry(in);
	}
	if (lfd >= 0) {
		int u = umount_esp(lfd);
		if (u < 0 && r == 0) {
			r = u;
			say("config", "failed", "cannot unmount the ESP: %s", strerror(-r));
		}
	}
	return r;
}

/* Is the pinned image on the disk already? An install leaves INSTALL_NOTE on the ESP, naming
 * the image. Then the machine boots it (a boot entry, BootNext) instead of writing it again: a
 * machine whose firmware keeps the network first in its boot order comes here on every boot.
 * 1: installed, the boot entry made; 0: not (a blank disk, another image); -errno. */
static int installed_boot(struct install *in)
{
	_cleanup_close_ int fd = open(in->disk->dev, O_RDONLY | O_CLOEXEC);
	int lfd = -1;
	if (fd < 0 || mount_esp(in, fd, false, &lfd) < 0)
		return 0;
	_cleanup_free_ char *text = NULL;
	json_object *note = NULL, *v;
	bool same = read_file(INSTALL_NOTE, 4096, &text, NULL) == 0 && (note = json_tokener_parse(text)) &&
		    json_object_object_get_ex(note, "image_sha256", &v) && json_object_is_type(v, json_type_string) &&
		    STREQ(json_object_get_string(v), in->image_pin);
	json_object_put(note);
	int r = 0;
	if (same) {
		say("installed", "ok", "this image (sha256 %s) is on %s already: booting it, nothing written", in->image_pin,
		    in->disk->dev);
		say("boot", "start", NULL);
		r = boot_entry(in);
	}
	umount_esp(lfd);
	return r < 0 ? r : same;
}

int fb_netboot_install(const char *cmdline)
{
	double t0 = now_seconds();
	struct install in = { .disk_fd = -1, .pipe_w = -1 };
	_cleanup_free_ char *config = NULL;
	log_program = NI; /* the flash engine's messages */
	signal(SIGPIPE, SIG_IGN);
	int r = read_params(cmdline, &in);
	if (r == FB_EXIT_OK && nb_ram_dir(NI) < 0)
		r = stopped("nothing written");
	if (r == FB_EXIT_OK)
		r = check_firmware(&in);
	if (r == FB_EXIT_OK)
		r = pick_disk(&in);
	if (r == FB_EXIT_OK)
		r = fetch_maps(&in, &config);
	if (r == FB_EXIT_OK && nb_load_modules(NI, "order") < 0)
		r = stopped("nothing written");
	bool installed = false;
	if (r == FB_EXIT_OK) {
		int k = installed_boot(&in);
		if (k < 0)
			r = stopped("the image is installed, but its boot entry could not be made");
		installed = k > 0;
	}
	if (r == FB_EXIT_OK && !installed)
		r = write_image(&in);
	if (r == FB_EXIT_OK && !installed && configure(&in, config) < 0)
		r = unboot(&in, "the image is written, but its config or boot entry is not");
	if (config)
		unlink(config);
	if (r != FB_EXIT_OK) {
		install_done(&in);
		return r;
	}
	printf("%s: done disk=%s%s seconds=%.0f: rebooting\n", NI, in.disk->dev, installed ? " installed=already" : "",
	       now_seconds() - t0);
	fflush(stdout);
	install_done(&in);
	sync();
	reboot(RB_AUTOBOOT);
	return stopped(strerror(errno)); /* reboot failed: the installed disk boots next time */
}
