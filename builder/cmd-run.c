/* pmoves-image run IMAGE: boot an image in QEMU, optionally as a test (--expect). */
#include "cmd.h"
#include "log.h"
#include "qemu.h"
#include "util.h"

#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SERVE_START_TIMEOUT_MS 10000

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: pmoves-image run IMAGE [--arch x86_64|aarch64] [--expect REGEX] [--timeout S]\n"
		"       pmoves-image run --pxe BUNDLE [--firmware uefi|bios] [--mac MAC] [--inventory FILE]\n"
		"                         [--mode live|install] [--disk FILE]... [--network-first]\n"
		"                         [--expect ...]\n"
		"                         [--config FILE] [--persist] [--log FILE] [--memory MiB]\n"
		"                         [--cpus N] [--net] [--accel auto|kvm|tcg] [--vars FILE]\n"
		"                         [--iommu] [--socket-net listen:PORT|connect:PORT]... [--no-reboot]\n"
		"                         [--machine NAME] [--disk-size SIZE] [-v]\n"
		"\n"
		"Boot a disk image (raw or qcow2) in QEMU under UEFI: x86_64 as q35 with OVMF, aarch64\n"
		"as virt with AAVMF, each with a private copy of the firmware variables. A Raspberry Pi\n"
		"image (boot loader raspi in manifest.json) boots the way the Pi does: the kernel,\n"
		"initramfs and device tree its config.txt names and its cmdline.txt, from its firmware\n"
		"partition, on an emulated Raspberry Pi 3B with the image as its SD card. The disk is\n"
		"in snapshot mode (the image is not changed) unless --persist. The serial console is\n"
		"copied to stdout; with --expect it is watched instead.\n"
		"\n"
		"With --pxe, a machine without a disk boots from the network instead: the bundle of\n"
		"the output 'pxe' (images/NAME/NAME.pxe) is served on 127.0.0.1 for the run by\n"
		"'pmoves-image serve', and the firmware's network boot (QEMU's own iPXE ROM) is sent\n"
		"to its boot.ipxe by the user-mode network's DHCP (restrict=off: the guest reaches\n"
		"this machine's 127.0.0.1 at 10.0.2.2). Its disks, if any, are --disk FILEs (raw;\n"
		"in snapshot mode unless --persist, as an IMAGE).\n"
		"\n"
		"options:\n"
		"  --arch ARCH      x86_64 or aarch64; default: \"arch\" of manifest.json beside the\n"
		"                   image, else the GPT type of its root partition, else x86_64\n"
		"  --expect REGEX   POSIX extended regex; exit 0 as soon as a console line matches it\n"
		"                   (ANSI escapes and \\r removed), printing that line\n"
		"  --timeout S      give up after S seconds, exit 1 (default 600 with --expect, none\n"
		"                   without)\n"
		"  --config FILE    JSON object given to the guest as fw_cfg opt/ai.pmoves/device.json\n"
		"  --persist        write to the image (default: snapshot, changes are discarded)\n"
		"  --log FILE       also write the raw console and QEMU's messages to FILE\n"
		"  --memory MiB     guest memory (default %u)\n"
		"  --cpus N         guest CPUs (default %u)\n"
		"  --net            user-mode network with restrict=off (default: restrict=on, no\n"
		"                   connections out of the guest); the guest reaches this machine's\n"
		"                   127.0.0.1 at 10.0.2.2 (a local server for a test)\n"
		"  --accel A        auto (default: KVM if a probe guest runs under it, else TCG), kvm,\n"
		"                   or tcg\n"
		"  --vars FILE      keep the firmware variables (boot entries) in FILE between boots:\n"
		"                   created from the firmware's template when missing, used in place\n"
		"                   otherwise (default: a private copy, removed after the boot)\n"
		"  --iommu          an emulated IOMMU: Intel VT-d on x86_64 (with an Intel CPU under\n"
		"                   TCG), SMMUv3 on aarch64\n"
		"  --socket-net listen:PORT | connect:PORT\n"
		"                   one more NIC, wired to another guest through a QEMU socket on\n"
		"                   127.0.0.1:PORT (one guest listens, the other connects); its MAC\n"
		"                   is 52:54:00:PP:PP:01 when listening, :02 when connecting (PPPP:\n"
		"                   the port in hex); up to %d\n"
		"  --no-reboot      when the guest reboots, QEMU exits instead of resetting it: a power\n"
		"                   cycle; with --persist, the next run boots what the guest wrote\n"
		"  --machine NAME   another machine the image's boot loader knows: a Pi image boots\n"
		"                   on raspi3b (default) or on virt (the same kernel, initramfs and\n"
		"                   command line, with PCI networking and fw_cfg for --config)\n"
		"  --disk-size SIZE the disk the guest sees is SIZE (a snapshot overlay, not with\n"
		"                   --persist): room for the first boot to grow into; an SD card is\n"
		"                   rounded up to a power of two (QEMU's rule)\n"
		"  --pxe BUNDLE     boot from the network, from BUNDLE (a NAME.pxe directory)\n"
		"  --firmware F     with --pxe: uefi (default: OVMF, as the fleet's x86 machines\n"
		"                   boot) or bios (SeaBIOS)\n"
		"  --mac MAC        with --pxe: the MAC address of the machine's NIC\n"
		"  --inventory FILE with --pxe: served with the bundle ('serve --inventory'): the\n"
		"                   entry with the machine's MAC gives its config\n"		"  --mode MODE      with --pxe: live or install, for a machine the inventory gives no\n"
		"                   mode (default: the bundle's, live)\n"
		"  --disk FILE      with --pxe: a disk of the machine, a raw file (written only with\n"
		"                   --persist), on virtio with serial pmoves-diskN (N from 1, in\n"
		"                   order); up to %d\n"		"  --network-first  with --disk: the network stays the first boot device (QEMU's boot\n"
		"                   order, so OVMF drops the boot entries an install makes): a\n"
		"                   firmware that netboots every time\n"
		"  -v, --verbose    print the QEMU command line\n"
		"  -h, --help       show this help\n"
		"\n"
		"exit status: 0 matched (or QEMU exited 0 without --expect); 1 timeout, QEMU exited\n"
		"without a match or failed; 2 bad usage or config; 3 IMAGE, QEMU or firmware missing;\n"
		"130 interrupted\n",
		QEMU_DEFAULT_MEMORY, QEMU_DEFAULT_CPUS, QEMU_SOCKNET_MAX, QEMU_PXE_DISKS_MAX);
}

/* `pmoves-image serve BUNDLE` on 127.0.0.1, a port the kernel picks: its pid and port, read
 * from the line it prints once it listens. */
static int serve_start(const char *bundle, const char *inventory, const char *mode, pid_t *ret_pid, unsigned *ret_port)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return log_errno(-errno, "cannot start 'pmoves-image serve'");
	pid_t parent = getpid(), pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(p[0]);
		close(p[1]);
		return log_errno(e, "cannot start 'pmoves-image serve'");
	}
	if (pid == 0) {
		/* It goes when run goes, however run ends. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(127);
		char *argv[10] = { "pmoves-image", "serve", (char *)bundle, "--listen", "127.0.0.1:0" };
		size_t k = 5;
		if (inventory)
			argv[k++] = "--inventory", argv[k++] = (char *)inventory;
		if (mode)
			argv[k++] = "--mode", argv[k++] = (char *)mode;
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(p[1]);
	char line[512] = "";
	size_t len = 0;
	int r = -ETIMEDOUT;
	double deadline = now_seconds() + SERVE_START_TIMEOUT_MS / 1000.0;
	for (;;) {
		if (len == sizeof(line) - 1) {
			r = -E2BIG;
			break;
		}
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		int left = (int)((deadline - now_seconds()) * 1000);
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			break;
		ssize_t n = read(p[0], line + len, sizeof(line) - 1 - len);
		if (n <= 0) {
			r = -EPIPE;
			break;
		}
		len += (size_t)n;
		line[len] = '\0';
		if (strchr(line, '\n')) {
			r = -EBADMSG;
			break;
		}
	}
	/* Its later output, if any, is not ours to read. */
	close(p[0]);
	/* "serving DIR on http://127.0.0.1:PORT/": the last " on http://" (DIR may hold one) */
	static const char on[] = " on http://127.0.0.1:";
	const char *at = NULL;
	for (const char *q = line; r == -EBADMSG && (q = strstr(q, on)); q++)
		at = q;
	uint64_t port = 0;
	if (at) {
		char digits[8] = "";
		size_t n = strspn(at + strlen(on), "0123456789");
		if (n > 0 && n < sizeof(digits)) {
			memcpy(digits, at + strlen(on), n);
			if (parse_u64(digits, &port) == 0 && port > 0 && port < 65536)
				r = 0;
		}
	}
	if (r < 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		log_error("'pmoves-image serve %s' did not start serving%s", bundle,
			  r == -ETIMEDOUT ? " in time" : r == -E2BIG ? ": its first line is too long" : " (above)");
		return r;
	}
	*ret_pid = pid;
	*ret_port = (unsigned)port;
	return 0;
}

static int run_pxe(struct qemu_opts *o, const char *bundle, const char *inventory, const char *mode)
{
	_cleanup_free_ char *script = strdupf("%s/boot.ipxe", bundle);
	struct stat st;
	if (!script)
		return EXIT_FAIL;
	if (stat(script, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("'%s' is not a network-boot bundle: it has no boot.ipxe (build a profile with the "
			  "output 'pxe': images/NAME/NAME.pxe)",
			  bundle);
		return EXIT_MISSING;
	}
	o->pxe_url = "http://10.0.2.2/"; /* checked as it will be */
	int r = qemu_check_opts(o);
	if (r)
		return r;
	pid_t pid = 0;
	unsigned port = 0;
	if (serve_start(bundle, inventory, mode, &pid, &port) < 0)
		return EXIT_FAIL;
	_cleanup_free_ char *url = strdupf("http://10.0.2.2:%u/boot.ipxe", port);
	log_info("serving '%s' on 127.0.0.1:%u for the run", bundle, port);
	o->pxe_url = url;
	r = url ? qemu_boot(o) : EXIT_FAIL;
	kill(pid, SIGTERM);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return r;
}

static int parse_uint_opt(const char *name, const char *arg, unsigned min, unsigned max, unsigned *ret)
{
	uint64_t v;
	if (parse_u64(arg, &v) < 0 || v < min || v > max) {
		log_error("--%s '%s' is not a whole number from %u to %u", name, arg, min, max);
		return -EINVAL;
	}
	*ret = (unsigned)v;
	return 0;
}

/* "listen:PORT" or "connect:PORT" */
static int parse_socknet(const char *arg, struct qemu_opts *o)
{
	if (o->n_socknet == QEMU_SOCKNET_MAX) {
		log_error("--socket-net given more than %d times", QEMU_SOCKNET_MAX);
		return -E2BIG;
	}
	struct qemu_socknet *s = &o->socknet[o->n_socknet];
	const char *port;
	if (!strncmp(arg, "listen:", 7))
		s->listen = true, port = arg + 7;
	else if (!strncmp(arg, "connect:", 8))
		s->listen = false, port = arg + 8;
	else {
		log_error("--socket-net '%s' is not listen:PORT or connect:PORT", arg);
		return -EINVAL;
	}
	if (parse_uint_opt("socket-net", port, 1, 65535, &s->port) < 0)
		return -EINVAL;
	o->n_socknet++;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	enum { O_ARCH = 256, O_EXPECT, O_TIMEOUT, O_CONFIG, O_PERSIST, O_NO_REBOOT, O_LOG, O_MEMORY, O_CPUS,
	       O_NET, O_ACCEL, O_VARS, O_IOMMU, O_SOCKNET, O_MACHINE, O_DISK_SIZE, O_PXE, O_FIRMWARE, O_MAC,
	       O_INVENTORY, O_MODE, O_DISK, O_NETWORK_FIRST };
	static const struct option opts[] = {
		{ "arch", required_argument, NULL, O_ARCH },
		{ "expect", required_argument, NULL, O_EXPECT },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "persist", no_argument, NULL, O_PERSIST },
		{ "no-reboot", no_argument, NULL, O_NO_REBOOT },
		{ "log", required_argument, NULL, O_LOG },
		{ "memory", required_argument, NULL, O_MEMORY },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "net", no_argument, NULL, O_NET },
		{ "accel", required_argument, NULL, O_ACCEL },
		{ "vars", required_argument, NULL, O_VARS },
		{ "iommu", no_argument, NULL, O_IOMMU },
		{ "socket-net", required_argument, NULL, O_SOCKNET },
		{ "machine", required_argument, NULL, O_MACHINE },
		{ "disk-size", required_argument, NULL, O_DISK_SIZE },
		{ "pxe", required_argument, NULL, O_PXE },
		{ "firmware", required_argument, NULL, O_FIRMWARE },
		{ "mac", required_argument, NULL, O_MAC },
		{ "inventory", required_argument, NULL, O_INVENTORY },
		{ "mode", required_argument, NULL, O_MODE },
		{ "disk", required_argument, NULL, O_DISK },
		{ "network-first", no_argument, NULL, O_NETWORK_FIRST },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct qemu_opts o = { 0 };
	const char *pxe = NULL, *firmware = NULL, *inventory = NULL, *mode = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		switch (c) {
		case O_ARCH:
			o.arch = optarg;
			break;
		case O_EXPECT:
			o.expect = optarg;
			break;
		case O_TIMEOUT:
			if (parse_uint_opt("timeout", optarg, 1, 7 * 24 * 3600, &o.timeout) < 0)
				return EXIT_USAGE;
			break;
		case O_CONFIG:
			o.config = optarg;
			break;
		case O_NO_REBOOT:
			o.no_reboot = true;
			break;
		case O_PERSIST:
			o.persist = true;
			break;
		case O_LOG:
			o.log = optarg;
			break;
		case O_MEMORY:
			if (parse_uint_opt("memory", optarg, 64, 1u << 20, &o.memory) < 0)
				return EXIT_USAGE;
			break;
		case O_CPUS:
			if (parse_uint_opt("cpus", optarg, 1, 64, &o.cpus) < 0)
				return EXIT_USAGE;
			break;
		case O_NET:
			o.net = true;
			break;
		case O_ACCEL:
			o.accel = optarg;
			break;
		case O_VARS:
			o.vars = optarg;
			break;
		case O_IOMMU:
			o.iommu = true;
			break;
		case O_SOCKNET:
			if (parse_socknet(optarg, &o) < 0)
				return EXIT_USAGE;
			break;
		case O_MACHINE:
			o.machine = optarg;
			break;
		case O_DISK_SIZE:
			if (parse_size(optarg, &o.disk_size) < 0 || o.disk_size == 0 || o.disk_size % 512) {
				log_error("--disk-size '%s' is not a size (a number with K, M, G or T, a multiple of 512)",
					  optarg);
				return EXIT_USAGE;
			}
			break;
		case O_PXE:
			pxe = optarg;
			break;
		case O_FIRMWARE:
			firmware = optarg;
			break;
		case O_MAC:
			o.mac = optarg;
			break;
		case O_INVENTORY:
			inventory = optarg;
			break;
		case O_MODE:
			if (!STREQ(optarg, "live") && !STREQ(optarg, "install")) {
				log_error("--mode '%s' is not live or install", optarg);
				return EXIT_USAGE;
			}
			mode = optarg;
			break;
		case O_DISK:
			if (o.n_pxe_disks == QEMU_PXE_DISKS_MAX) {
				log_error("--disk given more than %d times", QEMU_PXE_DISKS_MAX);
				return EXIT_USAGE;
			}
			o.pxe_disks[o.n_pxe_disks++] = optarg;
			break;
		case O_NETWORK_FIRST:
			o.network_first = true;
			break;
		case 'v':
			log_verbose = 1;
			break;
		case 'h':
			run_usage(stdout);
			return EXIT_OK;
		case ':':
			log_error("option '%s' needs a value, see 'pmoves-image run --help'", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			log_error("'%s' is not an option of run, see 'pmoves-image run --help'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (o.network_first && !o.n_pxe_disks) {
		log_error("--network-first is for a network boot with --disk");
		return EXIT_USAGE;
	}
	if ((firmware || o.mac || inventory || mode || o.n_pxe_disks) && !pxe) {
		log_error("--%s is for a network boot (--pxe BUNDLE)",
			  firmware ? "firmware" : o.mac ? "mac" : inventory ? "inventory" : mode ? "mode" : "disk");
		return EXIT_USAGE;
	}
	if (firmware && !STREQ(firmware, "uefi") && !STREQ(firmware, "bios")) {
		log_error("--firmware '%s' is not uefi or bios", firmware);
		return EXIT_USAGE;
	}
	o.bios = firmware && STREQ(firmware, "bios");
	if (pxe) {
		if (optind < argc) {
			log_error("--pxe boots from the network: no IMAGE too (given '%s')", argv[optind]);
			return EXIT_USAGE;
		}
		return run_pxe(&o, pxe, inventory, mode);
	}
	if (optind >= argc) {
		log_error("missing IMAGE, see 'pmoves-image run --help'");
		return EXIT_USAGE;
	}
	if (argc - optind > 1) {
		log_error("too many arguments: '%s', run takes one IMAGE", argv[optind + 1]);
		return EXIT_USAGE;
	}
	o.image = argv[optind];
	return qemu_boot(&o);
}
