/* pmoves-sandbox-init: PID 1 of a sandbox's initramfs. It loads the modules the guest kernel
 * needs for its disks and network (the files /lib/pmoves-sandbox/modules names, a line each, in
 * order),
 * reads the request from the I/O disk (/dev/vdb, sbx-io.h), mounts the root: the image every
 * sandbox shares (/dev/vda, read only) under an overlay whose writable layer is a tmpfs in the
 * guest's own memory, gone with the VM. It runs the command chrooted in the root with
 * its output going to the I/O disk, writes the result and ends the VM. No systemd, no shell:
 * the guest is up as soon as the kernel is.
 *
 * Linked statically against libc only: the initramfs holds this file and the modules. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/reboot.h>
#include <net/route.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sbx-io.h"

#define ROOT "/newroot"
#define LOWER "/lower"
#define RW "/rw" /* the tmpfs of the overlay's upper and work directories */
#define MODULE_DIR "/lib/pmoves-sandbox"

static int io_fd = -1;
static uint64_t io_size;
static int halt_how = RB_POWER_OFF;
static char why[1024];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	dprintf(2, "pmoves-sandbox-init: %s\n", why);
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n, len -= (size_t)n, off += (uint64_t)n;
	}
	return 0;
}

static void result(uint32_t kind, uint32_t value, uint32_t len, uint32_t dropped)
{
	uint8_t h[SBX_RES_HEAD] = { 0 };
	memcpy(h, SBX_RES_MAGIC, 8);
	sbx_le32_put(h + 8, kind);
	sbx_le32_put(h + 12, value);
	sbx_le32_put(h + 16, len);
	sbx_le32_put(h + 20, dropped);
	if (io_fd >= 0 && (pwrite_all(io_fd, h, sizeof(h), SBX_RES_OFF) < 0 || fsync(io_fd) < 0))
		dprintf(2, "pmoves-sandbox-init: writing the result: %s\n", strerror(errno));
}

static __attribute__((noreturn)) void end(void)
{
	sync();
	reboot(halt_how);
	for (;;)
		pause();
}

/* The guest could not run the command: the reason is the output. */
static __attribute__((noreturn)) void fail(void)
{
	size_t n = strlen(why);
	uint64_t room = io_size > SBX_RES_OFF + SBX_RES_HEAD ? io_size - SBX_RES_OFF - SBX_RES_HEAD : 0;
	if (n > room)
		n = (size_t)room;
	if (io_fd >= 0 && pwrite_all(io_fd, why, n, SBX_RES_OFF + SBX_RES_HEAD) == 0)
		result(SBX_NOINIT, 0, (uint32_t)n, 0);
	end();
}

static void load_modules(void)
{
	FILE *f = fopen(MODULE_DIR "/modules", "re");
	if (!f)
		return;
	char line[256], path[300];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!line[0] || strchr(line, '/'))
			continue;
		snprintf(path, sizeof(path), MODULE_DIR "/%s", line);
		/* A compressed module (.ko.xz, .ko.zst) the kernel decompresses itself (6.4 on). */
		size_t n = strlen(line);
		int flags = n > 3 && strcmp(line + n - 3, ".ko") ? 4 /* MODULE_INIT_COMPRESSED_FILE */ : 0;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || (syscall(SYS_finit_module, fd, "", flags) < 0 && errno != EEXIST))
			dprintf(2, "pmoves-sandbox-init: module %s: %s\n", line, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	fclose(f);
}

/* Block devices appear as their drivers probe: wait up to 10 s. */
static bool wait_for(const char *dev)
{
	struct stat st;
	for (int i = 0; i < 1000; i++) {
		if (stat(dev, &st) == 0 && S_ISBLK(st.st_mode))
			return true;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	return false;
}

static int ifreq_addr(int s, unsigned long req, const char *ifname, uint32_t a)
{
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = a;
	return ioctl(s, req, &ifr);
}

static int link_up(int s, const char *ifname)
{
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* eth0 as the request says: an address with its prefix, a default route, a resolver. */
static int configure(int s, const char *addr, const char *gw, const char *dns)
{
	if (link_up(s, "lo") < 0)
		return say("lo: %s", strerror(errno)), -1;
	if (!addr)
		return 0;
	char ip[32];
	const char *slash = strchr(addr, '/');
	unsigned long prefix = slash ? strtoul(slash + 1, NULL, 10) : 33;
	struct in_addr a, g;
	if (!slash || (size_t)(slash - addr) >= sizeof(ip) || prefix < 1 || prefix > 30)
		return say("bad addr=%s", addr), -1;
	memcpy(ip, addr, (size_t)(slash - addr));
	ip[slash - addr] = 0;
	if (inet_pton(AF_INET, ip, &a) != 1 || (gw && inet_pton(AF_INET, gw, &g) != 1))
		return say("bad addr=%s or gw=%s", addr, gw ? gw : ""), -1;
	uint32_t mask = htonl(~0u << (32 - prefix));
	if (ifreq_addr(s, SIOCSIFADDR, "eth0", a.s_addr) < 0 || ifreq_addr(s, SIOCSIFNETMASK, "eth0", mask) < 0 ||
	    link_up(s, "eth0") < 0)
		return say("eth0: %s", strerror(errno)), -1;
	if (gw) {
		struct rtentry rt = { 0 };
		struct sockaddr_in *d = (struct sockaddr_in *)&rt.rt_dst, *m = (struct sockaddr_in *)&rt.rt_genmask,
				   *w = (struct sockaddr_in *)&rt.rt_gateway;
		d->sin_family = m->sin_family = w->sin_family = AF_INET;
		w->sin_addr = g;
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		if (ioctl(s, SIOCADDRT, &rt) < 0)
			return say("default route via %s: %s", gw, strerror(errno)), -1;
	}
	if (dns) {
		/* A link there (systemd-resolved's) is replaced, never followed. */
		if (unlink(ROOT "/etc/resolv.conf") < 0 && errno != ENOENT)
			return say("/etc/resolv.conf: %s", strerror(errno)), -1;
		int fd = open(ROOT "/etc/resolv.conf", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		int r = fd < 0 ? -1 : dprintf(fd, "nameserver %s\n", dns);
		if (fd >= 0)
			close(fd);
		if (r < 0)
			return say("/etc/resolv.conf: %s", strerror(errno)), -1;
	}
	return 0;
}

static int network(const char *addr, const char *gw, const char *dns)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return say("socket: %s", strerror(errno)), -1;
	int r = configure(s, addr, gw, dns);
	close(s);
	return r;
}

static void mount_in_root(const char *dir, const char *type)
{
	char path[64];
	snprintf(path, sizeof(path), ROOT "%s", dir);
	mkdir(path, 0755);
	if (mount(type, path, type, MS_NOSUID | (strcmp(type, "devtmpfs") ? MS_NODEV | MS_NOEXEC : 0), NULL) < 0)
		dprintf(2, "pmoves-sandbox-init: mount %s: %s\n", path, strerror(errno));
}

int main(void)
{
	if (getpid() != 1)
		return fprintf(stderr, "pmoves-sandbox-init: runs as PID 1 of a sandbox's initramfs only\n"), 2;
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
	if (fcntl(2, F_GETFD) < 0) {
		int c = open("/dev/console", O_RDWR);
		if (c >= 0)
			dup2(c, 0), dup2(c, 1), dup2(c, 2);
		if (c > 2)
			close(c);
	}
	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	load_modules();

	if (!wait_for("/dev/vdb")) {
		say("no I/O disk /dev/vdb");
		end();
	}
	io_fd = open("/dev/vdb", O_RDWR | O_CLOEXEC);
	if (io_fd < 0 || ioctl(io_fd, BLKGETSIZE64, &io_size) < 0 || io_size < SBX_RES_OFF + SBX_RES_HEAD) {
		say("/dev/vdb: %s", io_fd < 0 ? strerror(errno) : "too small");
		end();
	}
	static char req[SBX_REQ_MAX + 1];
	ssize_t n = pread(io_fd, req, SBX_REQ_MAX, 0);
	uint32_t len = n >= (ssize_t)SBX_HEAD_SIZE ? sbx_le32_get((uint8_t *)req + 8) : 0;
	if (n != (ssize_t)SBX_REQ_MAX || memcmp(req, SBX_REQ_MAGIC, 8) || len == 0 ||
	    len > SBX_REQ_MAX - SBX_HEAD_SIZE || req[SBX_HEAD_SIZE + len - 1] != 0) {
		say("no request on /dev/vdb");
		fail();
	}
	char *argv[1024];
	size_t argc = 0;
	const char *addr = NULL, *gw = NULL, *dns = NULL;
	for (char *p = req + SBX_HEAD_SIZE, *e = p + len; p < e; p += strlen(p) + 1) {
		if (!strncmp(p, "arg=", 4) && argc < 1023)
			argv[argc++] = p + 4;
		else if (!strncmp(p, "addr=", 5))
			addr = p + 5;
		else if (!strncmp(p, "gw=", 3))
			gw = p + 3;
		else if (!strncmp(p, "dns=", 4))
			dns = p + 4;
		else if (!strcmp(p, "halt=reboot"))
			halt_how = RB_AUTOBOOT;
		else if (strcmp(p, "halt=poweroff")) {
			say("unknown request entry '%.64s'", p);
			fail();
		}
	}
	argv[argc] = NULL;
	if (argc == 0) {
		say("the request has no command");
		fail();
	}

	if (!wait_for("/dev/vda")) {
		say("no root disk /dev/vda");
		fail();
	}
	mkdir(LOWER, 0755);
	mkdir(RW, 0755);
	mkdir(ROOT, 0755);
	if (mount("/dev/vda", LOWER, "ext4", MS_RDONLY, NULL) < 0) {
		say("mount /dev/vda: %s", strerror(errno));
		fail();
	}
	/* Half the guest's memory at most (tmpfs's default): the rest is the command's. */
	if (mount("tmpfs", RW, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0 || mkdir(RW "/upper", 0755) < 0 ||
	    mkdir(RW "/work", 0755) < 0) {
		say("the overlay's tmpfs: %s", strerror(errno));
		fail();
	}
	if (mount("overlay", ROOT, "overlay", 0, "lowerdir=" LOWER ",upperdir=" RW "/upper,workdir=" RW "/work") < 0) {
		say("mount the overlay root: %s", strerror(errno));
		fail();
	}
	mount_in_root("/proc", "proc");
	mount_in_root("/sys", "sysfs");
	mount_in_root("/dev", "devtmpfs");
	if (network(addr, gw, dns) < 0)
		fail();

	int out[2], st[2];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0) {
		say("pipe: %s", strerror(errno));
		fail();
	}
	pid_t pid = fork();
	if (pid < 0) {
		say("fork: %s", strerror(errno));
		fail();
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || chroot(ROOT) < 0 || chdir("/") < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 ||
		    dup2(out[1], 2) < 0 || setsid() < 0)
			goto child_fail;
		clearenv();
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
		setenv("HOME", "/root", 1);
		setenv("TERM", "dumb", 1);
		setenv("LANG", "C.UTF-8", 1);
		execvp(argv[0], argv);
child_fail:;
		int e = errno;
		(void)!write(st[1], &e, sizeof(e));
		_exit(127);
	}
	close(out[1]);
	close(st[1]);

	uint64_t room = io_size - SBX_RES_OFF - SBX_RES_HEAD, done = 0, dropped = 0;
	if (room > UINT32_MAX)
		room = UINT32_MAX;
	/* Until the command ends, and then what it left in the pipe: a process it started in the
	 * background that keeps the pipe open does not keep the VM. */
	char buf[65536];
	int status = 0, e = 0;
	bool exited = false;
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t k = read(out[0], buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			if (exited)
				break;
			if (waitpid(pid, &status, WNOHANG) == pid)
				exited = true; /* drain what is there, then stop */
			else
				poll(&(struct pollfd){ .fd = out[0], .events = POLLIN }, 1, 50);
			continue;
		}
		if (k <= 0)
			break;
		size_t keep = (uint64_t)k <= room - done ? (size_t)k : (size_t)(room - done);
		if (keep && pwrite_all(io_fd, buf, keep, SBX_RES_OFF + SBX_RES_HEAD + done) < 0) {
			say("writing the output: %s", strerror(errno));
			fail();
		}
		done += keep;
		dropped += (uint64_t)k - keep;
	}
	while (!exited && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	while (waitpid(-1, NULL, WNOHANG) > 0) /* PID 1 reaps the orphans too */
		;
	if (read(st[0], &e, sizeof(e)) == sizeof(e)) {
		int m = snprintf(buf, sizeof(buf), "cannot run '%s': %s\n", argv[0], strerror(e));
		size_t keep = (uint64_t)m <= room ? (size_t)m : (size_t)room;
		done = pwrite_all(io_fd, buf, keep, SBX_RES_OFF + SBX_RES_HEAD) == 0 ? keep : 0;
		result(SBX_NOEXEC, (uint32_t)e, (uint32_t)done, 0);
	} else if (WIFSIGNALED(status))
		result(SBX_SIGNALED, (uint32_t)WTERMSIG(status), (uint32_t)done, dropped > UINT32_MAX ? UINT32_MAX : (uint32_t)dropped);
	else
		result(SBX_EXITED, (uint32_t)WEXITSTATUS(status), (uint32_t)done, dropped > UINT32_MAX ? UINT32_MAX : (uint32_t)dropped);
	end();
}
