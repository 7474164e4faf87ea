/* pmoves-image flash IMAGE DEVICE...: write an image to cards and sticks, safely (docs/flash.md). */
#include "cmd.h"
#include "flash-config.h"
#include "flash-device.h"
#include "flash.h"
#include "log.h"
#include "util.h"

#include <signal.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/major.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

static void flash_usage(FILE *f)
{
	fprintf(f,
		"usage: pmoves-image flash IMAGE DEVICE... [--bmap FILE] [--config FILE | --inventory FILE\n"
		"                          --name NAME] [--yes] [--force] [--no-verify] [--json] [-v]\n"
		"\n"
		"Write a disk image (raw, or compressed .zst or .xz) to USB sticks and SD cards, all at\n"
		"once from one read of the image: only its mapped ranges (from its bmap, or its own\n"
		"holes), then read back and checked range by range. A device that is mounted, holds the\n"
		"running system, is used as swap or by LVM/MD/dm-crypt, is a partition, is read-only or\n"
		"smaller than the image is refused; so is a disk that is not a card or stick, unless\n"
		"--force. docs/flash.md has the rules.\n"
		"\n"
		"options:\n"
		"  --bmap FILE       the image's block map (default: IMAGE.bmap, or NAME.img.bmap beside\n"
		"                    NAME.img.zst; without one, the image's data ranges)\n"
		"  --config FILE     write FILE as pmoves/device.json on the boot partition, after\n"
		"                    checking it with the first-boot schema\n"
		"  --inventory FILE  the fleet's inventory (docs/flash.md); with --name NAME, write the\n"
		"  --name NAME       config of its entry NAME as --config does\n"
		"  --yes             do not ask before writing (needed without a terminal)\n"
		"  --force           also write a disk that is not a card or stick (an eMMC, NVMe, SATA\n"
		"                    or loop device), or a regular file\n"
		"  --no-verify       do not read the devices back\n"
		"  --json            print the summary as JSON\n"
		"  -v, --verbose     more messages\n"
		"  -h, --help        show this help\n"
		"\n"
		"exit status: 0 every device written and verified; 1 writing or verifying failed, or\n"
		"damage inside compressed data found while writing (the summary says where); 2 bad\n"
		"usage, an invalid config or bmap, an image format not read here, or every device\n"
		"refused (nothing written); 3 IMAGE or a config file missing; 130 interrupted\n");
}

enum state { T_OK, T_REFUSED, T_FAILED };

struct dev {
	const char *path;
	enum state state;
	char *why;
	struct stat st;
	struct flash_dev info;
	uint64_t diskseq; /* the kernel's disk sequence number when checked; 0: unknown */
	struct flash_target *t;
};

static int refuse(struct dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct dev *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(d->why);
	if (vasprintf(&d->why, fmt, ap) < 0)
		d->why = NULL;
	va_end(ap);
	d->state = T_REFUSED;
	log_error("refusing '%s': %s", d->path, d->why ? d->why : "out of memory");
	return -EPERM;
}

/* The files flash reads (the image, its bmap): a target must not be, nor be backed by, one. */
struct inputs {
	struct stat st[2];
	const char *what[2];
	size_t n;
};

static const char *input_of(const struct inputs *in, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < in->n; i++)
		if (in->st[i].st_dev == dev && in->st[i].st_ino == ino)
			return in->what[i];
	return NULL;
}

/* A loop device backed by the image or its bmap: writing it would destroy what is read. */
static const char *loop_backed_by_input(const struct dev *d, const struct inputs *in)
{
	if (major(d->st.st_rdev) != LOOP_MAJOR)
		return NULL;
	_cleanup_close_ int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct loop_info64 li;
	if (fd < 0 || ioctl(fd, LOOP_GET_STATUS64, &li) < 0)
		return NULL; /* not bound to a file: nothing to destroy */
	dev_t dev = makedev(major((dev_t)li.lo_device), minor((dev_t)li.lo_device));
	return input_of(in, dev, (ino_t)li.lo_inode);
}

/* The rules that need no opening: what it is, and for a disk flash_dev_check. */
static void check_device(const char *root, struct dev *d, const struct inputs *in, uint64_t size, bool force)
{
	if (stat(d->path, &d->st) < 0) {
		refuse(d, "it does not exist (%s)", strerror(errno));
		return;
	}
	if (S_ISREG(d->st.st_mode)) {
		const char *what = input_of(in, d->st.st_dev, d->st.st_ino);
		if (what)
			refuse(d, "it is the %s itself", what);
		else if (!force)
			refuse(d, "it is a regular file, not a block device: --force writes the image into it");
		return;
	}
	if (!S_ISBLK(d->st.st_mode)) {
		refuse(d, "it is not a block device");
		return;
	}
	const char *what = loop_backed_by_input(d, in);
	if (what) {
		refuse(d, "it is a loop device backed by the %s", what);
		return;
	}
	_cleanup_close_ int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || ioctl(fd, BLKGETDISKSEQ, &d->diskseq) < 0)
		d->diskseq = 0; /* not known (ENOTTY before Linux 5.15) */
	_cleanup_free_ char *why = NULL;
	int r = flash_dev_probe(root, d->st.st_rdev, &d->info);
	if (r < 0) {
		refuse(d, "sysfs knows no block device %u:%u (%s)", major(d->st.st_rdev), minor(d->st.st_rdev), strerror(-r));
		return;
	}
	r = flash_dev_check(root, &d->info, size, force, &why);
	if (r == -EPERM)
		refuse(d, "%s", why);
	else if (r < 0)
		refuse(d, "cannot tell whether it is in use (%s)", strerror(-r));
}

static void describe(const struct dev *d)
{
	char sz[24];
	if (S_ISREG(d->st.st_mode)) {
		fprintf(stderr, "  '%s': a regular file\n", d->path);
		return;
	}
	format_size_human(d->info.size, sz);
	const char *m = *d->info.model ? d->info.model : "(no model)";
	_cleanup_free_ char *model = str_printable(m, strlen(m), NULL); /* from the device */
	fprintf(stderr, "  '%s': %s, %s, transport %s%s%s, %s\n", d->path, model ? model : "?", sz,
		*d->info.transport ? d->info.transport : "unknown", *d->info.mmc_type ? " " : "", d->info.mmc_type,
		d->info.removable ? "removable" : "not removable");
}

/* SIGINT, SIGTERM, SIGHUP: the write stops between chunks, the devices are reported partly
 * written, and flash exits 130. */
static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
	interrupted = sig;
}
static bool flash_interrupted(void)
{
	return interrupted != 0;
}

/* Ask on the terminal; 0 when the answer is yes. */
static int confirm(const char *image, size_t n)
{
	fprintf(stderr, "Write '%s' to %s, erasing %s? [y/N] ", image, n == 1 ? "this device" : "these devices",
		n == 1 ? "it" : "them");
	fflush(stderr);
	char line[16];
	if (!fgets(line, sizeof(line), stdin) || interrupted) /* Ctrl-C at the prompt: no */
		return -ECANCELED;
	line[strcspn(line, "\n")] = '\0';
	return STREQ(line, "y") || STREQ(line, "yes") ? 0 : -ECANCELED;
}

static int open_target(struct dev *d, struct flash_target *t)
{
	bool blk = S_ISBLK(d->st.st_mode);
	int fd = open(d->path, O_RDWR | O_CLOEXEC | (blk ? O_EXCL : O_NOFOLLOW));
	if (fd < 0) {
		if (errno == EBUSY)
			return refuse(d, "it is in use (opened exclusively by another program, or mounted)");
		if (errno == EROFS || errno == EACCES)
			return refuse(d, "it is read-only (%s)", strerror(errno));
		return refuse(d, "cannot open it (%s)", strerror(errno));
	}
	/* Claimed now (O_EXCL): check again what may have changed since the check and the
	 * prompt (a card swapped in its reader, a loop device resized), on what was opened. */
	struct stat st;
	uint64_t size = 0, seq = 0;
	int ro = 0;
	const char *changed = NULL;
	if (fstat(fd, &st) < 0 || (blk ? !S_ISBLK(st.st_mode) || st.st_rdev != d->st.st_rdev
				   : !S_ISREG(st.st_mode) || st.st_ino != d->st.st_ino || st.st_dev != d->st.st_dev))
		changed = "it is not the device that was checked";
	else if (blk && (ioctl(fd, BLKGETSIZE64, &size) < 0 || size != d->info.size))
		changed = "its size changed";
	else if (blk && (ioctl(fd, BLKROGET, &ro) < 0 || ro))
		changed = "it became read-only";
	else if (blk && d->diskseq && ioctl(fd, BLKGETDISKSEQ, &seq) == 0 && seq != d->diskseq)
		changed = "its medium changed (disk sequence number)";
	if (changed) {
		close(fd);
		return refuse(d, "%s after it was checked", changed);
	}
	*t = (struct flash_target){ .path = d->path, .fd = fd, .is_blk = blk, .dfd = -1,
				    .dev_size = blk ? d->info.size : (uint64_t)st.st_size };
	d->t = t;
	return 0;
}

static const char *verify_name(enum flash_verify v)
{
	return v == FLASH_VERIFY_OK ? "ok" : v == FLASH_VERIFY_FAILED ? "FAILED" : v == FLASH_VERIFY_OFF ? "off" : "not run";
}

static const char *state_name(enum state s)
{
	return s == T_OK ? "ok" : s == T_REFUSED ? "refused" : "failed";
}

static void summary_text(const struct flash_image *img, struct dev *devs, size_t n)
{
	char sz[24], mp[24];
	format_size_human(img->size, sz);
	format_size_human(img->mapped, mp);
	if (img->mapped_known)
		printf("image '%s': %s, %s mapped (%" PRIu64 " bytes)%s%s\n", img->path, sz, mp, img->mapped,
		       img->bmap_path ? ", bmap " : "", img->bmap_path ? img->bmap_path : "");
	else /* compressed without a bmap: its ranges are found while writing */
		printf("image '%s': %s, not read (nothing was written)\n", img->path, sz);
	printf("%-24s %14s %8s %8s %8s  %s\n", "DEVICE", "BYTES", "WRITE", "VERIFY", "VERIFY_S", "RESULT");
	for (size_t i = 0; i < n; i++) {
		struct dev *d = &devs[i];
		const struct flash_target *t = d->t;
		_cleanup_free_ char *why = d->why ? str_printable(d->why, strlen(d->why), NULL) : NULL;
		if (!t) {
			printf("%-24s %14s %8s %8s %8s  %s: %s\n", d->path, "-", "-", "-", "-", state_name(d->state), why ? why : "");
			continue;
		}
		printf("%-24s %14" PRIu64 " %7.1fs %8s %7.1fs  %s%s%s\n", d->path, t->written, t->write_seconds,
		       verify_name(t->verify), t->verify_seconds, state_name(d->state), why ? ": " : "", why ? why : "");
	}
}

static void summary_json(const struct flash_image *img, struct dev *devs, size_t n)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(o, "image", json_object_new_string(img->path));
	json_object_object_add(o, "image_size", json_object_new_uint64(img->size));
	json_object_object_add(o, "mapped_bytes", json_object_new_uint64(img->mapped));
	json_object_object_add(o, "bmap", img->bmap_path ? json_object_new_string(img->bmap_path) : NULL);
	for (size_t i = 0; i < n; i++) {
		struct dev *d = &devs[i];
		json_object *e = json_object_new_object();
		json_object_object_add(e, "device", json_object_new_string(d->path));
		json_object_object_add(e, "result", json_object_new_string(state_name(d->state)));
		if (d->t) {
			json_object_object_add(e, "bytes_written", json_object_new_uint64(d->t->written));
			json_object_object_add(e, "write_seconds", json_object_new_double(d->t->write_seconds));
			json_object_object_add(e, "verify", json_object_new_string(verify_name(d->t->verify)));
			json_object_object_add(e, "verify_seconds", json_object_new_double(d->t->verify_seconds));
		}
		if (d->why)
			json_object_object_add(e, "message", json_object_new_string(d->why));
		json_object_array_add(a, e);
	}
	json_object_object_add(o, "devices", a);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

struct flash_args {
	const char *bmap, *config, *inventory, *name;
	bool yes, force, verify, json;
};

static int parse_args(int argc, char **argv, struct flash_args *a)
{
	enum { O_BMAP = 256, O_CONFIG, O_INVENTORY, O_NAME, O_YES, O_FORCE, O_NO_VERIFY, O_JSON };
	static const struct option opts[] = {
		{ "bmap", required_argument, NULL, O_BMAP },	   { "config", required_argument, NULL, O_CONFIG },
		{ "inventory", required_argument, NULL, O_INVENTORY }, { "name", required_argument, NULL, O_NAME },
		{ "yes", no_argument, NULL, O_YES },		   { "force", no_argument, NULL, O_FORCE },
		{ "no-verify", no_argument, NULL, O_NO_VERIFY },	   { "json", no_argument, NULL, O_JSON },
		{ "verbose", no_argument, NULL, 'v' },		   { "help", no_argument, NULL, 'h' },
		{},
	};
	int c;
	optind = 1;
	opterr = 0;
	a->verify = true;
	while ((c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		switch (c) {
		case O_BMAP: a->bmap = optarg; break;
		case O_CONFIG: a->config = optarg; break;
		case O_INVENTORY: a->inventory = optarg; break;
		case O_NAME: a->name = optarg; break;
		case O_YES: a->yes = true; break;
		case O_FORCE: a->force = true; break;
		case O_NO_VERIFY: a->verify = false; break;
		case O_JSON: a->json = true; break;
		case 'v': log_verbose = 1; break;
		case 'h': flash_usage(stdout); return 1;
		case ':':
			log_error("option '%s' needs a value, see 'pmoves-image flash --help'", argv[optind - 1]);
			return -EINVAL;
		default:
			log_error("'%s' is not an option of flash, see 'pmoves-image flash --help'", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (argc - optind < 2) {
		log_error("missing %s, see 'pmoves-image flash --help'", argc - optind < 1 ? "IMAGE and DEVICE" : "DEVICE");
		return -EINVAL;
	}
	if (a->config && a->inventory) {
		log_error("--config and --inventory exclude each other");
		return -EINVAL;
	}
	if (!a->inventory != !a->name) {
		log_error("--inventory and --name go together");
		return -EINVAL;
	}
	if (argc - optind - 1 > 64) {
		log_error("%d devices: at most 64 at once", argc - optind - 1);
		return -EINVAL;
	}
	return 0;
}

static int exit_for_open(int r)
{
	return r == -ENOENT ? EXIT_MISSING : r == -ENOMEM || r == -EIO ? EXIT_FAIL : EXIT_USAGE;
}

struct flash_cmd {
	struct flash_args a;
	const char *image, *root;
	struct flash_image img;
	struct flash_config cfg;
	struct dev *devs;
	struct flash_target *t;
	size_t n, nt;
};

/* The most any target can take: a block device's size, a regular file's size plus its file
 * system's free space. Bounds the one pass that learns the size of a compressed image that does
 * not record it. Nothing is opened for writing. */
static uint64_t largest_target(char **paths, size_t n)
{
	uint64_t most = 0;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		struct statvfs vfs;
		uint64_t size = 0;
		if (stat(paths[i], &st) < 0 || !(S_ISBLK(st.st_mode) || S_ISREG(st.st_mode)))
			continue; /* refused later, with the reason */
		_cleanup_close_ int fd = open(paths[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd < 0 || fstat(fd, &st) < 0)
			continue;
		if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0)
			size = 0;
		if (S_ISREG(st.st_mode) && fstatvfs(fd, &vfs) == 0)
			size = (uint64_t)st.st_size + (uint64_t)vfs.f_bavail * vfs.f_frsize;
		most = size > most ? size : most;
	}
	return most;
}

/* The image, its map and the config: all checked before any device is looked at. */
static int prepare(struct flash_cmd *c, char **paths)
{
	int r = flash_image_open(c->image, c->a.bmap, largest_target(paths, c->n), &c->img);
	if (r < 0)
		return exit_for_open(r);
	if (!c->a.config && !c->a.inventory)
		return EXIT_OK;
	r = flash_config_load(c->a.config, c->a.inventory, c->a.name, &c->cfg);
	if (r == 0)
		r = flash_config_find_boot(&c->img, &c->cfg);
	if (r < 0)
		return r == -ENOENT ? EXIT_MISSING : r == -ENOMEM ? EXIT_FAIL : EXIT_USAGE;
	return EXIT_OK;
}

/* Every rule for every device; then show them and ask. The number that may be written. */
static size_t check_all(struct flash_cmd *c)
{
	struct inputs in = { 0 };
	if (fstat(c->img.src.fd, &in.st[in.n]) == 0)
		in.what[in.n++] = "image";
	if (c->img.bmap_path && stat(c->img.bmap_path, &in.st[in.n]) == 0)
		in.what[in.n++] = "image's bmap";
	size_t ok = 0;
	bool twice = false;
	for (size_t i = 0; i < c->n; i++) {
		struct dev *d = &c->devs[i];
		check_device(c->root, d, &in, c->img.size, c->a.force);
		for (size_t k = 0; k < i && d->state == T_OK; k++) {
			const struct stat *o = &c->devs[k].st;
			bool same = S_ISBLK(d->st.st_mode) ? S_ISBLK(o->st_mode) && o->st_rdev == d->st.st_rdev
							   : o->st_ino == d->st.st_ino && o->st_dev == d->st.st_dev;
			if (same) {
				refuse(d, "it is given twice (as '%s')", c->devs[k].path);
				twice = true;
			}
		}
		ok += d->state == T_OK;
	}
	if (twice) { /* a usage error: nothing is written to any of them */
		for (size_t i = 0; i < c->n; i++)
			if (c->devs[i].state == T_OK)
				refuse(&c->devs[i], "a device is given twice");
		return 0;
	}
	if (!ok)
		return 0;
	fprintf(stderr, "writing '%s' (%s%s) to:\n", c->image, flash_format_name(c->img.src.format),
		c->img.bmap_path ? ", with its bmap" : "");
	for (size_t i = 0; i < c->n; i++)
		if (c->devs[i].state == T_OK)
			describe(&c->devs[i]);
	if (c->a.yes)
		return ok;
	const char *no = NULL;
	if (isatty(STDIN_FILENO) != 1)
		no = "no terminal to confirm on: --yes writes without asking";
	else if (confirm(c->image, ok) < 0)
		no = "not confirmed";
	if (!no)
		return ok;
	for (size_t i = 0; i < c->n; i++)
		if (c->devs[i].state == T_OK)
			refuse(&c->devs[i], "%s", no);
	return 0;
}

static void write_all(struct flash_cmd *c)
{
	(void)flash_write(&c->img, c->t, c->nt,
			  &(struct flash_opts){ .verify = c->a.verify, .test_hook = getenv("PMOVES_FLASH_TEST_HOOK"),
						.cancelled = flash_interrupted });
	for (size_t i = 0; i < c->n; i++) {
		struct dev *d = &c->devs[i];
		if (!d->t)
			continue;
		if (d->t->error) {
			d->state = T_FAILED;
			d->why = d->t->why ? strdup(d->t->why) : NULL;
			log_error("%s, on '%s'", d->t->why ? d->t->why : "failed", d->path);
			continue;
		}
		if (!c->cfg.file)
			continue;
		int r = flash_config_write(&c->cfg, d->t->fd, d->path);
		if (r == 0 && fsync(d->t->fd) < 0)
			r = log_errno(-errno, "'%s': fsync failed", d->path);
		if (r < 0) {
			d->state = T_FAILED;
			d->why = strdup("the image is written, pmoves/device.json is not");
		}
	}
}

static void cmd_free(struct flash_cmd *c)
{
	for (size_t i = 0; c->devs && i < c->n; i++) {
		free(c->devs[i].why);
		if (c->devs[i].t) {
			free(c->devs[i].t->why);
			close(c->devs[i].t->fd);
		}
	}
	free(c->devs);
	free(c->t);
	flash_config_done(&c->cfg);
	flash_image_close(&c->img);
}

int cmd_flash(int argc, char **argv)
{
	struct flash_cmd c = { .img.src.fd = -1 };
	int r = parse_args(argc, argv, &c.a);
	if (r != 0)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	c.image = argv[optind];
	c.n = (size_t)(argc - optind - 1);
	c.root = ""; /* this machine's sysfs and /proc (tests give flash_dev_check fixture roots) */
	c.devs = calloc(c.n, sizeof(*c.devs));
	c.t = calloc(c.n, sizeof(*c.t));
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: the prompt's read ends */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	int ret = c.devs && c.t ? prepare(&c, argv + optind + 1) : (log_errno(-ENOMEM, "flash"), EXIT_FAIL);
	if (ret == EXIT_OK) {
		for (size_t i = 0; i < c.n; i++)
			c.devs[i].path = argv[optind + 1 + i];
		if (check_all(&c))
			for (size_t i = 0; i < c.n; i++)
				if (c.devs[i].state == T_OK && open_target(&c.devs[i], &c.t[c.nt]) == 0)
					c.nt++;
		if (c.nt)
			write_all(&c);
		for (size_t i = 0; i < c.n; i++)
			if (c.devs[i].state != T_OK)
				ret = c.nt ? EXIT_FAIL : EXIT_USAGE;
		if (c.a.json)
			summary_json(&c.img, c.devs, c.n);
		else
			summary_text(&c.img, c.devs, c.n);
	}
	cmd_free(&c);
	return interrupted ? EXIT_INTERRUPTED : ret;
}
