/* netboot: what a network-booted machine's initramfs runs to make its root (README, "Network
 * boot"). The bundle's initramfs script (scripts/pmoves, written by the builder's output "pxe")
 * brings the network up and runs
 *
 *   pmoves-firstboot netboot --mount DIR
 *
 * whose mode is pmoves.mode= on the kernel command line: install (fb-install.c) writes the
 * machine's disk and reboots into it; live (here, the default) makes DIR (initramfs-tools' ${rootmnt}) the live root: the squashfs at pmoves.root=URL,
 * pinned by pmoves.root_sha256=HEX on the kernel command line, downloaded into a RAM
 * filesystem, checked as it comes, and mounted read-only under a RAM overlay. Nothing
 * persists: every boot starts from the same squashfs. It says what it does on the console:
 *
 *   pmoves-netboot: step=<fetch|modules|mount> state=<start|ok|failed> [detail]
 *   pmoves-netboot: done mode=live seconds=<s>
 *
 * Everything lives under /run/pmoves (its own tmpfs), which initramfs-tools moves into the
 * booted system with /run: the squashfs file, its loop device's mount (lower), the overlay's
 * writable half (upper, work). Kernel modules the initramfs lacks (squashfs, overlay, loop)
 * come with the bundle in NB_MODULES_DIR, loaded in the order its file "order" lists. */
#include "download.h"
#include "fb-config.h"
#include "fb-netboot.h"
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <getopt.h>
#include <linux/loop.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define NB "pmoves-netboot"
#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4 /* <linux/module.h>, Linux 6.4 */
#endif

void nb_say(const char *who, const char *step, const char *state, const char *fmt, ...)
{
	printf("%s: step=%s state=%s", who, step, state);
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		putchar(' ');
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
}

#define say(...) nb_say(NB, __VA_ARGS__)
#define CMDLINE_MAX (64u * 1024)

void nb_retrying(void *ctx, const char *why)
{
	nb_say(ctx, "fetch", "retry", "%s", why);
}

int nb_load_modules(const char *who, const char *list)
{
	_cleanup_free_ char *order_path = strdupf("%s/%s", NB_MODULES_DIR, list), *order = NULL;
	if (!order_path)
		return -ENOMEM;
	int r = read_file(order_path, 64 * 1024, &order, NULL);
	if (r == -ENOENT)
		return 0; /* none needed */
	if (r < 0) {
		nb_say(who, "modules", "failed", "cannot read '%s': %s", order_path, strerror(-r));
		return r;
	}
	unsigned n = 0;
	for (char *line = order, *next; *line; line = next) {
		next = line + strcspn(line, "\n");
		if (*next)
			*next++ = '\0';
		if (!*line)
			continue;
		if (strchr(line, '/') || line[0] == '.') {
			nb_say(who, "modules", "failed", "'%s' lists '%s', which is not a file name", order_path, line);
			return -EINVAL;
		}
		_cleanup_free_ char *path = strdupf("%s/%s", NB_MODULES_DIR, line);
		if (!path)
			return -ENOMEM;
		/* A compressed module (.ko.xz, .ko.zst, .ko.gz) the kernel decompresses itself (Linux
		 * 6.4 and later, CONFIG_MODULE_DECOMPRESS); Debian 12's are plain .ko. */
		const char *ko = strstr(line, ".ko");
		unsigned flags = ko && ko[3] ? MODULE_INIT_COMPRESSED_FILE : 0;
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || (syscall(SYS_finit_module, fd, "", flags) < 0 && errno != EEXIST)) {
			r = -errno;
			nb_say(who, "modules", "failed", "cannot load '%s': %s", path, strerror(-r));
			return r;
		}
		n++;
	}
	nb_say(who, "modules", "ok", "list=%s loaded=%u", list, n);
	return 0;
}

int nb_loop_attach(int fd, uint64_t offset, uint64_t size, bool rw, const char *label, char ret_dev[static 32])
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	for (unsigned attempt = 0; attempt < 8; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			return -errno;
		char dev[32];
		snprintf(dev, sizeof(dev), "/dev/loop%d", n);
		_cleanup_close_ int lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0)
			return -errno;
		struct loop_config cfg = { .fd = (uint32_t)fd };
		cfg.info.lo_flags = (rw ? 0 : LO_FLAGS_READ_ONLY) | LO_FLAGS_AUTOCLEAR;
		cfg.info.lo_offset = offset;
		cfg.info.lo_sizelimit = size;
		snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", label);
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
			memcpy(ret_dev, dev, sizeof(dev));
			return TAKE_FD(lfd);
		}
		if (errno != EBUSY)
			return -errno;
		/* Taken between GET_FREE and CONFIGURE: another one. */
	}
	return -EBUSY;
}

static int make_dirs(void)
{
	static const char *const dirs[] = { NB_RAM_DIR "/lower", NB_RAM_DIR "/upper", NB_RAM_DIR "/work" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (mkdir(dirs[i], 0755) < 0)
			return -errno;
	return 0;
}

int nb_pinned_url(const char *cmdline, const char *key, const char *what, bool optional, char **ret_url, char **ret_pin)
{
	_cleanup_free_ char *pin_key = strdupf("%s_sha256", key), *url = NULL, *pin = NULL, *err = NULL;
	if (!pin_key)
		return FB_EXIT_FAILED;
	url = fb_cmdline_get(cmdline, key);
	pin = fb_cmdline_get(cmdline, pin_key);
	if (!url && optional) {
		*ret_url = *ret_pin = NULL;
		return FB_EXIT_OK;
	}
	if (!url || !pin) {
		fb_error("the kernel command line has no %s: %s needs %s=URL and %s=HEX (the bundle's boot.ipxe "
			 "gives both)", !url ? key : pin_key, what, key, pin_key);
		return FB_EXIT_USAGE;
	}
	if (strlen(pin) != 64 || strspn(pin, "0123456789abcdef") != 64) {
		fb_error("%s is not 64 lower-case hex digits", pin_key);
		return FB_EXIT_USAGE;
	}
	if (url_check(url, URL_PINNED, &err) < 0) {
		fb_error("%s: %s", key, err);
		return FB_EXIT_USAGE;
	}
	*ret_url = TAKE_PTR(url);
	*ret_pin = TAKE_PTR(pin);
	return FB_EXIT_OK;
}

static const char fstab[] = "# PMOVES live system (network boot): the root is a squashfs in RAM under a RAM overlay.\n"
			    "# Nothing is mounted from a disk and nothing persists across a reboot.\n";

static int live_root(const char *cmdline, const char *mount_dir)
{
	double t0 = now_seconds();
	_cleanup_free_ char *url = NULL, *pin = NULL, *shown = NULL, *err = NULL;
	int r = nb_pinned_url(cmdline, "pmoves.root", "a live network boot", false, &url, &pin);
	if (r != FB_EXIT_OK)
		return r;
	if (!(shown = url_shown(url)) || nb_ram_dir(NB) < 0)
		return FB_EXIT_FAILED;
	say("fetch", "start", "url=%s", shown);
	double t = now_seconds();
	_cleanup_close_ int fd = open(NB_RAM_DIR "/root.squashfs", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		say("fetch", "failed", "cannot create '%s': %s", NB_RAM_DIR "/root.squashfs", strerror(errno));
		return FB_EXIT_FAILED;
	}
	struct download_opts o = { .any_http = true, .attempts = 6, .max_size = UINT64_C(64) << 30,
				   .user_agent = "pmoves-netboot", .retrying = nb_retrying, .ctx = (void *)NB };
	free(err);
	err = NULL;
	r = download_fd(fd, url, pin, &o, &err);
	struct stat st;
	if (r < 0 || fstat(fd, &st) < 0) {
		/* The message names the URL without user:password or query, and both hashes. */
		say("fetch", "failed", "%s", err ? err : strerror(r < 0 ? -r : errno));
		return FB_EXIT_FAILED;
	}
	say("fetch", "ok", "bytes=%lld sha256=%s seconds=%.1f", (long long)st.st_size, pin, now_seconds() - t);

	if (nb_load_modules(NB, "order") < 0)
		return FB_EXIT_FAILED;

	say("mount", "start", "on=%s", mount_dir);
	char dev[32];
	const char *what = "a loop device";
	_cleanup_close_ int lfd = nb_loop_attach(fd, 0, 0, false, "pmoves-root.squashfs", dev);
	r = lfd < 0 ? lfd : 0;
	if (r == 0) {
		what = "directories";
		r = make_dirs();
	}
	if (r == 0) {
		what = "the squashfs";
		r = mount(dev, NB_RAM_DIR "/lower", "squashfs", MS_RDONLY | MS_NODEV, NULL) < 0 ? -errno : 0;
	}
	if (r == 0) {
		what = "the overlay";
		r = mount("overlay", mount_dir, "overlay", 0,
			  "lowerdir=" NB_RAM_DIR "/lower,upperdir=" NB_RAM_DIR "/upper,workdir=" NB_RAM_DIR "/work") < 0
			    ? -errno
			    : 0;
	}
	if (r < 0) {
		say("mount", "failed", "cannot set up %s: %s", what, strerror(-r));
		return FB_EXIT_FAILED;
	}
	/* The image's fstab names its disk's partitions, which a live machine has not: systemd
	 * would wait for them and stop in emergency mode. */
	_cleanup_free_ char *fstab_path = strdupf("%s/etc/fstab", mount_dir);
	_cleanup_close_ int ffd =
		fstab_path ? open(fstab_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644) : -1;
	if (ffd < 0 || write(ffd, fstab, sizeof(fstab) - 1) != (ssize_t)(sizeof(fstab) - 1)) {
		say("mount", "failed", "cannot write '/etc/fstab' of the live root: %s", strerror(errno));
		return FB_EXIT_FAILED;
	}
	say("mount", "ok", "root=squashfs overlay=ram");
	printf("%s: done mode=live seconds=%.0f\n", NB, now_seconds() - t0);
	fflush(stdout);
	return FB_EXIT_OK;
}

/* Its own tmpfs: initramfs-tools' /run is a tenth of the RAM, too small for a root. The default
 * size, half the RAM, holds the squashfs and what the live system writes. */
int nb_ram_dir(const char *who)
{
	if ((mkdir(NB_RAM_DIR, 0755) < 0 && errno != EEXIST) ||
	    mount("pmoves-ram", NB_RAM_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0) {
		nb_say(who, "fetch", "failed", "cannot mount a RAM filesystem on '%s': %s", NB_RAM_DIR, strerror(errno));
		return -errno;
	}
	return 0;
}

int fb_netboot_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mount", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *mount_dir = NULL, *mode = NULL;
	int c;
	/* netboot [MODE] [options]: the mode first, then its options. */
	if (argc > 1 && argv[1][0] != '-')
		mode = argv[1], argc--, argv++;
	optind = 0;
	while ((c = getopt_long(argc, argv, "+m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mount_dir = optarg;
			break;
		case 'h':
			printf("usage: %s netboot [live|install] --mount DIR\n\n"
			       "Run by a network-booted machine's initramfs (the bundle of pmoves-image's output\n"
			       "'pxe'). The mode is the argument, else pmoves.mode= on the kernel command line,\n"
			       "else live.\n\n"
			       "live     DIR becomes the live root: the squashfs at pmoves.root=URL (pinned by\n"
			       "         pmoves.root_sha256=HEX) downloaded into RAM, under a RAM overlay. Nothing\n"
			       "         persists. Progress: 'pmoves-netboot: step=... state=...'.\n"
			       "install  the image at pmoves.image=URL (zstd, pinned by pmoves.image_sha256=HEX,\n"
			       "         laid out by pmoves.bmap=URL pinned by pmoves.bmap_sha256=HEX) written to\n"
			       "         the machine's disk: the only fixed disk, or pmoves.disk=serial:S|wwn:W|path:P;\n"
			       "         verified by reading back; pmoves.config=URL (pinned by\n"
			       "         pmoves.config_sha256=HEX) becomes its ESP's pmoves/device.json; a UEFI\n"
			       "         boot entry; then the machine reboots into it. Progress:\n"
			       "         'pmoves-install: step=... state=...'; on failure it stops, saying why,\n"
			       "         and the disk does not boot.\n",
			       FB_NAME);
			return FB_EXIT_OK;
		default:
			fprintf(stderr, "%s: see '%s netboot --help'\n", FB_NAME, FB_NAME);
			return FB_EXIT_USAGE;
		}
	}
	_cleanup_free_ char *cmdline = NULL, *cmd_mode = NULL;
	int r = read_file("/proc/cmdline", CMDLINE_MAX, &cmdline, NULL);
	if (r < 0) {
		fb_error("cannot read '/proc/cmdline': %s", strerror(-r));
		return FB_EXIT_MISSING;
	}
	if (!mode)
		mode = (cmd_mode = fb_cmdline_get(cmdline, "pmoves.mode")) ? cmd_mode : "live";
	bool live = STREQ(mode, "live"), install = STREQ(mode, "install");
	if ((!live && !install) || optind != argc || (live && !mount_dir)) {
		if (!live && !install)
			fprintf(stderr, "%s: netboot: mode '%s' is not live or install\n", FB_NAME, mode);
		fprintf(stderr, "%s: usage: %s netboot [live|install] --mount DIR\n", FB_NAME, FB_NAME);
		return FB_EXIT_USAGE;
	}
	return live ? live_root(cmdline, mount_dir) : fb_netboot_install(cmdline);
}
