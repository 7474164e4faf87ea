/* The proxmox steps (proxmox-kernel, proxmox-ve, proxmox-vms) on fixture trees. A stand-in
 * runner records every argv and plays apt-get, qm and ip: installing a package adds it to the
 * tree's dpkg status, "qm create ID" writes /etc/pve/qemu-server/ID.conf. The release key and
 * the repository's Release file come from a small HTTP server on 127.0.0.1 that this test
 * runs: a stand-in for Proxmox's servers, with a key of our own. */
#include "run.h"
#include "test-fb-lib.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

/* 300 bytes, (i * 7 + 3) % 256, and their SHA-512 as Python's hashlib gives it. */
#define KEY_SHA512                                                                          \
	"46e56ad30db9ef50f8b6762ba55839737f3fba34ab47863c9daff7b3f58f97fe3465a52dd364560db47f" \
	"802909ced49093322621ea0aebf8e0696b85ca8f81f0"
#define APT "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
#define HOSTS_BEFORE "127.0.0.1\tlocalhost\n127.0.1.1\tpve1\n::1\tlocalhost ip6-localhost ip6-loopback\n"
#define HOSTS_AFTER "127.0.0.1\tlocalhost\n10.0.2.15\tpve1\n::1\tlocalhost ip6-localhost ip6-loopback\n"
#define DPKG_DEBIAN                                                                                   \
	"Package: linux-image-amd64\nStatus: install ok installed\nVersion: 6.1.112-1\n\n"              \
	"Package: linux-image-6.1.0-28-amd64\nStatus: install ok installed\nVersion: 6.1.119-1\n\n"     \
	"Package: linux-image-6.1.0-27-amd64\nStatus: deinstall ok config-files\nVersion: 6.1.115-1\n\n" \
	"Package: os-prober\nStatus: install ok installed\nVersion: 1.81\n\n"                           \
	"Package: systemd\nStatus: install ok installed\nVersion: 252.31-1\n"

#define PVE "6.8.12-4-pve"
#define DEBIAN_KERNEL "6.1.0-28-amd64"
#define BOOT_ID_A "0f6a3c4e-1111-4aaa-8bbb-000000000001"
#define BOOT_ID_B "0f6a3c4e-2222-4aaa-8bbb-000000000002"

static char www[] = "/tmp/test-fb-proxmox-www-XXXXXX";
/* tests/fixtures/standins/update-grub: GRUB's menu for a fixture tree. */
static char update_grub[PATH_MAX];
static pid_t server_pid;
static int server_port;

static void serve(int ls, const char *dir)
{
	for (;;) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			continue;
		char req[2048];
		ssize_t n = read(c, req, sizeof(req) - 1);
		req[n > 0 ? n : 0] = '\0';
		char path[512] = "";
		if (!strncmp(req, "GET /", 5))
			snprintf(path, sizeof(path), "%.*s", (int)strcspn(req + 5, " ?\r\n"), req + 5);
		char *body = NULL;
		size_t len = 0;
		char *file = t_strf("%s/%s", dir, path);
		bool found = path[0] && !strstr(path, "..") && read_file(file, 1 << 20, &body, &len) == 0;
		free(file);
		char head[128];
		int hl = snprintf(head, sizeof(head), "HTTP/1.0 %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
				  found ? "200 OK" : "404 Not Found", found ? len : 0);
		if (write(c, head, (size_t)hl) == hl && found && write(c, body, len) < 0)
			perror("stand-in server: write");
		free(body);
		close(c);
	}
}

/* An HTTP server on 127.0.0.1 serving DIR: the stand-in for download.proxmox.com. */
static void server_start(const char *dir)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 16) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) < 0)
		tap_skip_all("cannot listen on 127.0.0.1");
	server_port = ntohs(a.sin_port);
	fflush(stdout);
	server_pid = fork();
	if (server_pid == 0) {
		serve(ls, dir);
		_exit(0);
	}
	close(ls);
}

static void stand_in(const char *root)
{
	char *top = t_beside(root, "");
	top[strlen(top) - 1] = '\0';
	char *script = t_strf(
		"#!/bin/sh\n"
		"# stand-in for apt-get, qm, ip, ifreload, networkctl, debconf-set-selections, update-grub, systemctl:\n"
		"# records argv; plays on the tree, also when the tree is taken for the running system. Installing\n"
		"# proxmox-default-kernel puts a kernel in /boot and does what its hooks would: update-grub, or a\n"
		"# kernel-install entry (with its sort key) for systemd-boot\n"
		"echo \"$*\" >> %s/calls\n"
		"root=%s; if [ \"$1\" = chroot ]; then shift 2; fi\n"
		"case $1 in\n"
		"ip) [ -e %s/no-route ] && exit 2\n"
		"  if [ \"$4 $5 $6\" = 'addr show dev' ]; then\n"
		"    [ $7 = ens3 ] && [ ! -e %s/bridged ] && echo '2: ens3    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic ens3\\       valid_lft 86012sec preferred_lft 86012sec'\n"
		"    [ $7 = vmbr0 ] && [ -e %s/bridged ] && echo '5: vmbr0    inet 10.0.2.15/24 brd 10.0.2.255 scope global vmbr0\\       valid_lft forever preferred_lft forever'\n"
		"    exit 0; fi\n"
		"  [ $3 = addr ] || [ $3 = route ] && [ $4 = flush ] && exit 0\n"
		"  if [ $4 = addr ]; then echo '2: ens3    inet 10.0.2.16/24 brd 10.0.2.255 scope global ens3\\       valid_lft forever'; exit 0; fi\n"
		"  [ -e %s/no-default-route ] && { echo 'RTNETLINK answers: Network is unreachable' >&2; exit 2; }\n"
		"  echo '192.0.2.1 via 10.0.2.2 dev ens3 src 10.0.2.15 uid 0'; echo '    cache';;\n"
		"apt-get) shift 6; verb=$1; shift\n"
		"  [ -e %s/apt-$verb.rc ] && exit $(cat %s/apt-$verb.rc)\n"
		"  case $verb in\n"
		"  install) for p; do printf '\\nPackage: %%s\\nStatus: install ok installed\\nVersion: 1.0-stand-in\\n' $p >> $root/var/lib/dpkg/status\n"
		"    if [ $p = proxmox-default-kernel ] && [ ! -e %s/no-kernel ]; then echo stand-in > $root/boot/vmlinuz-" PVE "\n"
		"      [ -e $root/etc/default/grub ] && sh %s $root\n"
		"      [ -d $root/boot/efi/loader/entries ] && printf 'title Debian GNU/Linux 12 (bookworm)\\nversion " PVE "\\nsort-key debian\\nlinux /pmoves/" PVE "/linux\\n' > $root/boot/efi/loader/entries/pmoves-" PVE ".conf\n"
		"    fi\n"
		"    [ $p = proxmox-ve ] && mkdir -p $root/usr/sbin && printf '#!/bin/sh\\n' > $root/usr/sbin/qm &&\n"
		"      printf '#!/bin/sh\\n' > $root/usr/sbin/ifreload; done;;\n"
		"  remove) for p; do awk -v RS= -v ORS='\\n\\n' -v p=\"Package: $p\" '$0 !~ (\"(^|\\n)\" p \"\\n\")' $root/var/lib/dpkg/status > $root/.s && mv $root/.s $root/var/lib/dpkg/status; done;;\n"
		"  esac;;\n"
		"qm) [ \"$2\" = create ] && mkdir -p $root/etc/pve/qemu-server && echo \"$*\" > $root/etc/pve/qemu-server/$3.conf;;\n"
		"update-grub) sh %s $root;;\n"
		"ifreload) [ -e %s/ifreload.rc ] && exit $(cat %s/ifreload.rc)\n"
		"  [ -e %s/no-port ] || { mkdir -p $root/sys/class/net/ens3 && ln -sfn ../../../devices/virtual/net/vmbr0 $root/sys/class/net/ens3/master; }\n"
		"  touch %s/bridged;;\n"
		"networkctl) [ \"$2\" = list ] || exit 0\n"
		"  # networkd lets go of the link on the second look\n"
		"  if [ -e %s/listed ]; then s=unmanaged; else s=configured; touch %s/listed; fi\n"
		"  [ -e %s/networkd-holds ] && s=configured\n"
		"  echo \"  2 $5 ether routable $s\";;\n"
		"esac\nexit 0\n",
		top, root, top, top, top, top, top, top, top, update_grub, update_grub, top, top, top, top, top, top, top);
	char *sp = t_strf("%s/stand-in", top);
	if (write_file_atomic(sp, script, strlen(script), 0755) < 0)
		abort();
	free(sp);
	free(script);
	free(top);
}

static char *calls(const char *root)
{
	char *p = t_beside(root, "calls"), *c = t_read(p, NULL);
	free(p);
	return c ? c : strdup("");
}

static void calls_reset(const char *root)
{
	char *p = t_beside(root, "calls");
	unlink(p);
	free(p);
}

static void flag(const char *root, const char *name, const char *text)
{
	char *p = t_beside(root, name);
	if (text)
		write_file_atomic(p, text, strlen(text), 0644);
	else
		unlink(p);
	free(p);
}

/* The config with the stand-in repository, PROXMOX_EXTRA inside "proxmox". */
static char *config(const char *extra, const char *key_sha512)
{
	return t_strf("{ \"steps\": { \"growfs\": { \"enabled\": false }, \"ssh\": { \"enabled\": false },"
		      " \"efiboot\": { \"enabled\": false } },\n"
		      "  \"proxmox\": { \"repository\": \"http://127.0.0.1:%d/pve\","
		      " \"key\": { \"url\": \"http://127.0.0.1:%d/proxmox-release-bookworm.gpg\", \"sha512\": \"%s\" }%s%s } }\n",
		      server_port, server_port, key_sha512, extra ? ", " : "", extra ? extra : "");
}

/* GRUB's menu for the kernels in ROOT/boot, as update-grub would write it (the stand-in). */
static void mkgrub(const char *root)
{
	char *argv[] = { "sh", update_grub, (char *)root, NULL };
	struct run_opts o = { 0 };
	if (run_argv(argv, &o) != 0)
		abort();
}

/* A Debian 12 host: hostname pve1 on 127.0.1.1, the Debian kernel installed and running (boot
 * BOOT_ID_A), an RTX 3090 with its audio function at 01:00, GRUB with its menu. */
static char *tree(const char *cfg)
{
	char *root = t_tree();
	stand_in(root);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	t_write(root, "etc/hostname", "pve1\n");
	t_write(root, "etc/hosts", HOSTS_BEFORE);
	t_write(root, "etc/default/grub", "GRUB_DEFAULT=0\n");
	t_write(root, "var/lib/dpkg/status", DPKG_DEBIAN);
	t_write(root, "proc/sys/kernel/osrelease", DEBIAN_KERNEL "\n");
	t_write(root, "proc/sys/kernel/random/boot_id", BOOT_ID_A "\n");
	t_write(root, "boot/vmlinuz-" DEBIAN_KERNEL, "stand-in kernel\n");
	mkgrub(root);
	static const char *const fn[][4] = {
		{ "0000:00:02.0", "0x8086", "0x3e92", "0x030000" }, /* the host's own Intel graphics */
		{ "0000:01:00.0", "0x10de", "0x2204", "0x030000" },
		{ "0000:01:00.1", "0x10de", "0x1aef", "0x040300" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(fn); i++) {
		static const char *const names[] = { "vendor", "device", "class" };
		for (size_t k = 0; k < 3; k++) {
			char *rel = t_strf("sys/bus/pci/devices/%s/%s", fn[i][0], names[k]), *text = t_strf("%s\n", fn[i][k + 1]);
			t_write(root, rel, text);
			free(rel), free(text);
		}
	}
	return root;
}

static char *qm_line(const char *root, int id, const char *name, int mem, int cores, const char *tail)
{
	return t_strf("chroot %s qm create %d --name %s --memory %d --cores %d --machine q35 --bios ovmf --ostype l26 "
		      "--cpu host --scsihw virtio-scsi-single --onboot 1 --efidisk0 local-lvm:1,efitype=4m,pre-enrolled-keys=0 "
		      "--net0 virtio,bridge=vmbr0%s\n",
		      root, id, name, mem, cores, tail);
}

static void test_sequence(void)
{
	char *cfg = config(NULL, KEY_SHA512), *root = tree(cfg);
	struct t_result r = t_run(root, NULL);
	char *c = calls(root);
	char *want = t_strf("ip -4 -o route get 192.0.2.1\n"
			    "chroot %s dpkg --configure -a\n"
			    "chroot %s " APT " update\n"
			    "chroot %s " APT " full-upgrade\n"
			    "chroot %s " APT " install proxmox-default-kernel\n",
			    root, root, root, root);
	tap_is_str(c, want, "proxmox-kernel: route query, dpkg --configure -a (an interrupted apt run), apt-get update, full-upgrade, install proxmox-default-kernel, in chroot");
	tap_contains(r.out, "step=proxmox-kernel state=reboot 'pve1' is 10.0.2.15 in '/etc/hosts'", "proxmox-kernel asks for a reboot");
	tap_ok(r.status == 0 && !strstr(r.out, "step=proxmox-ve") && !strstr(r.out, "done status"),
	       "nothing runs after the reboot request (exit 0, no done line)");
	char *hosts = t_read(root, "etc/hosts"), *src = t_read(root, "etc/apt/sources.list.d/pve-install-repo.list");
	tap_is_str(hosts, HOSTS_AFTER, "/etc/hosts: the hostname on the machine's address, no 127.0.1.1 line");
	char *want_src = t_strf("# Written by pmoves-firstboot (proxmox step): change its config, not this file.\n"
				"deb [arch=amd64] http://127.0.0.1:%d/pve bookworm pve-no-subscription\n",
				server_port);
	tap_is_str(src, want_src, "sources list: the configured repository, bookworm pve-no-subscription, arch amd64");
	char *keyp = t_strf("%s/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg", root), *key = NULL, *srv = NULL;
	size_t klen = 0, slen = 0;
	read_file(keyp, 1 << 20, &key, &klen);
	char *srvp = t_strf("%s/proxmox-release-bookworm.gpg", www);
	read_file(srvp, 1 << 20, &srv, &slen);
	tap_ok(key && srv && klen == 300 && slen == 300 && !memcmp(key, srv, 300) &&
		       (t_stat(root, "etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg").st_mode & 07777) == 0644,
	       "the release key is the served one, byte for byte, 0644");
	free(keyp), free(key), free(srv), free(srvp);
	free(c), free(want), free(hosts), free(src), free(want_src);
	t_result_free(&r);

	/* The next boot, now on the Proxmox kernel. */
	calls_reset(root);
	t_write(root, "proc/sys/kernel/osrelease", "6.8.12-4-pve\n");
	r = t_run(root, NULL);
	c = calls(root);
	char *q100 = qm_line(root, 100, "docker-host", 32768, 8, " --hostpci0 0000:01:00,pcie=1,x-vga=1,rombar=1"),
	     *q101 = qm_line(root, 101, "dev-workstation", 16384, 4, ""), *q102 = qm_line(root, 102, "headscale-hub", 2048, 2, ""),
	     *q103 = qm_line(root, 103, "gateway", 4096, 2, "");
	want = t_strf("ip -4 -o route get 192.0.2.1\n"
		      "chroot %s dpkg --configure -a\n"
		      "chroot %s debconf-set-selections /var/lib/pmoves/proxmox/postfix.debconf\n"
		      "chroot %s " APT " install proxmox-ve postfix open-iscsi chrony\n"
		      "chroot %s " APT " remove linux-image-amd64 linux-image-6.1.0-28-amd64 os-prober\n"
		      "chroot %s update-grub\n"
		      "%s%s%s%s",
		      root, root, root, root, root, q100, q101, q102, q103);
	tap_is_str(c, want, "after the reboot: postfix preseeded, proxmox-ve installed, Debian kernel and os-prober removed, "
			    "update-grub, four VMs with qm create, the GPU's slot on VM 100");
	tap_contains(r.out, "step=proxmox-kernel state=ok running the Proxmox kernel 6.8.12-4-pve", "proxmox-kernel verified after the reboot");
	tap_contains(r.out, "step=proxmox-ve state=ok proxmox-ve postfix open-iscsi chrony installed; removed linux-image-amd64 "
			    "linux-image-6.1.0-28-amd64 os-prober; update-grub",
		     "proxmox-ve: its detail names what was removed");
	tap_contains(r.out, "step=proxmox-vms state=ok created 100 docker-host (GPU 0000:01:00), 101 dev-workstation, 102 headscale-hub, 103 gateway",
		     "proxmox-vms: the four VMs of the hub and spoke");
	tap_contains(r.out, "step=proxmox-bridge state=pending 'vmbr0' takes the uplink's live address: it is set up on the running machine",
		     "proxmox-bridge: pending on a tree (it needs the live address), the VMs are created all the same");
	tap_ok(r.status == 1 && strstr(r.out, "done status=degraded") && !strstr(c, "disable pmoves-firstboot"),
	       "done status=degraded, the unit stays enabled for the bridge");
	char *nested = t_read(root, "etc/modprobe.d/pmoves-kvm-nested.conf");
	tap_ok(nested && strstr(nested, "\noptions kvm_intel nested=1\noptions kvm_amd nested=1\n"),
	       "proxmox-vms: nested virtualization on for kvm_intel and kvm_amd (the VMs' own /dev/kvm)");
	free(nested);
	char *deb = t_read(root, "var/lib/pmoves/proxmox/postfix.debconf");
	tap_is_str(deb, "postfix postfix/main_mailer_type select No configuration\npostfix postfix/mailname string pve1\n",
		   "postfix preseeded: No configuration");
	free(deb), free(c), free(want), free(q100), free(q101), free(q102), free(q103);
	t_result_free(&r);

	/* Without state every step is checked again: all three find their effect there. */
	calls_reset(root);
	char *state = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(state);
	free(state);
	char *before = t_tree_digest(root, true);
	r = t_run(root, NULL);
	char *after = t_tree_digest(root, true);
	c = calls(root);
	tap_ok(strstr(r.out, "step=proxmox-kernel state=skipped running the Proxmox kernel 6.8.12-4-pve") &&
		       strstr(r.out, "step=proxmox-ve state=skipped already done") &&
		       strstr(r.out, "step=proxmox-vms state=skipped all 4 VMs exist: left as they are"),
	       "a run without state: check finds every proxmox step done");
	tap_ok(!strstr(c, "apt-get") && !strstr(c, "qm ") && !strstr(c, " ip ") && STREQ(before, after),
	       "... and runs no apt-get, qm or ip, and changes nothing");
	if (strstr(c, "apt-get") || strstr(c, "qm "))
		tap_diag("calls: %s", c);
	free(c), free(before), free(after);
	t_result_free(&r);
	t_cleanup(root);
	free(cfg);
}

static void test_existing_vm(void)
{
	char *cfg = config("\"postfix\": \"local\", \"address\": \"192.168.10.5\", \"storage\": \"tank\", \"bridge\": \"vmbr1\","
			   " \"vms\": [ { \"id\": 100, \"name\": \"docker-host\", \"memory\": \"8G\", \"cores\": 4, \"gpu\": true },"
			   " { \"id\": 102, \"name\": \"hub\", \"disk_image\": \"/var/lib/vz/import/headscale-hub.qcow2\" },"
			   " { \"id\": 105, \"name\": \"scratch\", \"disk_size\": \"64G\", \"memory\": \"512M\", \"cores\": 1 } ]",
			   KEY_SHA512);
	char *root = tree(cfg);
	t_write(root, "etc/pve/qemu-server/100.conf", "name: docker-host\nmemory: 65536\n");
	t_write(root, "etc/hosts", "127.0.0.1\tlocalhost pve1\n192.168.10.9\tpve1 # old\n::1\tlocalhost\n");
	t_write(root, "var/lib/vz/import/headscale-hub.qcow2", "QFI\xfb stand-in");
	struct t_result r = t_run(root, NULL);
	char *c1 = calls(root);
	t_write(root, "proc/sys/kernel/osrelease", PVE "\n");
	r = (t_result_free(&r), t_run(root, NULL)); /* after the reboot, on the Proxmox kernel */
	char *c = calls(root), *conf = t_read(root, "etc/pve/qemu-server/100.conf"), *hosts = t_read(root, "etc/hosts");
	tap_ok(!strstr(c1, "ip -4") && hosts && STREQ(hosts, "127.0.0.1\tlocalhost\n192.168.10.5\tpve1\n::1\tlocalhost\n"),
	       "'address' from the config: no route query for it; the name leaves the loopback line and the old address");
	if (hosts && !strstr(hosts, "192.168.10.5"))
		tap_diag("hosts: %s", hosts);
	free(c1);
	tap_ok(!strstr(c, "qm create 100") && conf && STREQ(conf, "name: docker-host\nmemory: 65536\n"),
	       "an existing VM 100 is left as it is");
	char *q102 = t_strf("chroot %s qm create 102 --name hub --memory 2048 --cores 2 --machine q35 --bios ovmf --ostype l26 "
			    "--cpu host --scsihw virtio-scsi-single --onboot 1 --efidisk0 tank:1,efitype=4m,pre-enrolled-keys=0 "
			    "--net0 virtio,bridge=vmbr1 --scsi0 tank:0,import-from=/var/lib/vz/import/headscale-hub.qcow2,iothread=1,discard=on "
			    "--boot order=scsi0\n",
			    root),
	     *q105 = t_strf("chroot %s qm create 105 --name scratch --memory 512 --cores 1 --machine q35 --bios ovmf --ostype l26 "
			    "--cpu host --scsihw virtio-scsi-single --onboot 1 --efidisk0 tank:1,efitype=4m,pre-enrolled-keys=0 "
			    "--net0 virtio,bridge=vmbr1 --scsi0 tank:64,iothread=1,discard=on --boot order=scsi0\n",
			    root);
	tap_contains(c, q102, "VM 102: the qcow2 image imported with import-from on the configured storage");
	tap_contains(c, q105, "VM 105: a new 64 GiB disk, 512 MiB, 1 core, bridge vmbr1");
	tap_contains(r.out, "step=proxmox-vms state=ok created 102 hub, 105 scratch; 100 docker-host exists: left as it is",
		     "the detail reports the VM left alone");
	char *nested = t_read(root, "etc/modprobe.d/pmoves-kvm-nested.conf");
	tap_ok(nested && strstr(nested, "\noptions kvm_intel nested=1\noptions kvm_amd nested=1\n"),
	       "proxmox-vms: nested virtualization on for kvm_intel and kvm_amd (the VMs' own /dev/kvm)");
	free(nested);
	char *deb = t_read(root, "var/lib/pmoves/proxmox/postfix.debconf");
	tap_contains(deb, "select Local only\n", "postfix 'local': Local only");
	free(deb), free(q102), free(q105), free(c), free(conf), free(cfg), free(hosts);
	t_result_free(&r);
	t_cleanup(root);
}

/* A VM ID taken elsewhere in the cluster (pmxcfs's .vmlist): reported, not created. */
static void test_cluster_vmlist(void)
{
	char *cfg = config("\"vms\": [ { \"id\": 100, \"name\": \"docker-host\" }, { \"id\": 101, \"name\": \"dev\" } ]", KEY_SHA512),
	     *root = tree(cfg);
	t_write(root, "etc/pve/.vmlist", "{\n\"version\": 7,\n\"ids\": {\n\"101\": { \"node\": \"pve2\", \"type\": \"lxc\", \"version\": 3 }}\n}\n");
	struct t_result r = t_run(root, NULL);
	t_write(root, "proc/sys/kernel/osrelease", PVE "\n");
	r = (t_result_free(&r), t_run(root, NULL)); /* after the reboot, on the Proxmox kernel */
	char *c = calls(root);
	tap_ok(strstr(r.out, "step=proxmox-vms state=ok created 100 docker-host; 101 dev (lxc on node pve2) exists: left as it is") &&
		       strstr(c, "qm create 100 ") && !strstr(c, "qm create 101 "),
	       "an ID in the cluster's .vmlist (a container on another node): named, not created");
	free(c), free(cfg);
	t_result_free(&r);
	t_cleanup(root);
}

static void boot_id(const char *root, const char *id)
{
	char *text = t_strf("%s\n", id);
	t_write(root, "proc/sys/kernel/random/boot_id", text);
	free(text);
}

static void state_remove(const char *root)
{
	char *state = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(state);
	free(state);
}

/* The Proxmox kernel installed and the default entry, but the machine came back on the Debian
 * one: the step is not ok, and it does not reboot again. */
static void test_running_debian_kernel(void)
{
	char *cfg = config("\"vms\": []", KEY_SHA512), *root = tree(cfg);
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "; the Proxmox kernel " PVE " is the default boot entry (GRUB); '" DEBIAN_KERNEL "' runs: reboot into it\n",
		     "proxmox-kernel: installed, GRUB's default already boots it (the newest kernel first), reboot");
	t_result_free(&r);
	calls_reset(root);
	boot_id(root, BOOT_ID_B); /* rebooted, but into the Debian kernel */
	r = t_run(root, NULL);
	char *c = calls(root), *want = t_strf("chroot %s " APT " remove linux-image-amd64 os-prober\n", root);
	tap_contains(r.out, "step=proxmox-kernel state=failed the Proxmox kernel " PVE " is installed, but '" DEBIAN_KERNEL "' runs "
			    "after the reboot: the firmware or the boot loader did not start the default entry",
		     "after the reboot on the Debian kernel: failed with the reason, not ok");
	tap_contains(c, want, "running the Debian kernel: its package is not removed");
	tap_contains(r.out, "kept 'linux-image-6.1.0-28-amd64': it is the running kernel", "proxmox-ve says which kernel it kept");
	tap_contains(r.out, "step=proxmox-vms state=skipped no VMs in the config", "\"vms\": [] creates none");
	tap_ok(r.status == 1 && strstr(r.out, "done status=degraded"), "the run is degraded");
	free(c), free(want);
	t_result_free(&r);
	/* The timer runs it again in this boot (the bridge is pending): no second reboot. */
	calls_reset(root);
	r = t_run(root, NULL);
	c = calls(root);
	tap_ok(strstr(r.out, "step=proxmox-kernel state=failed ") && strstr(r.out, "but '" DEBIAN_KERNEL "' runs after the reboot into "
											"it: the firmware or the boot loader did not start the "
											"default entry (pick it in the boot menu to see why); not "
											"rebooting again") &&
		       !strstr(r.out, "state=reboot") && !strstr(c, "apt-get"),
	       "a later run in that boot: failed again, no reboot loop, nothing installed again");
	free(c), free(cfg);
	t_result_free(&r);
	t_cleanup(root);
}

/* Installed, but not booted: the program cut off after the install, before the reboot. */
static void test_installed_not_running(void)
{
	char *cfg = config("\"vms\": []", KEY_SHA512), *root = tree(cfg);
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_CRASH_AFTER=proxmox-kernel:applied");
	tap_is_int(r.status, 99, "the run cut off right after the install, before the reboot");
	t_result_free(&r);
	calls_reset(root);
	r = t_run(root, NULL); /* the same boot */
	char *c = calls(root);
	tap_ok(strstr(r.out, "step=proxmox-kernel state=reboot the Proxmox kernel " PVE " is the default boot entry (GRUB); '" DEBIAN_KERNEL
			     "' runs: reboot into it\n") &&
		       !strstr(c, "apt-get") && !strstr(c, "ip -4") && !strstr(r.out, "state=ok"),
	       "installed, Debian's kernel running: not ok, a reboot asked for, no network or apt-get needed");
	if (!strstr(r.out, "state=reboot"))
		tap_diag("out: %s", r.out);
	free(c);
	t_result_free(&r);
	/* ... and the same without any state (installed by hand, another boot): the same. */
	state_remove(root);
	boot_id(root, BOOT_ID_B);
	char *mark = t_strf("%s/var/lib/pmoves/proxmox/kernel-reboot", root);
	unlink(mark);
	free(mark);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=proxmox-kernel state=reboot the Proxmox kernel " PVE " is the default boot entry", "no state: check is not satisfied, reboot");
	t_result_free(&r);
	/* After that reboot, on the Proxmox kernel: ok. */
	t_write(root, "proc/sys/kernel/osrelease", PVE "\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=proxmox-kernel state=ok running the Proxmox kernel " PVE ", the default boot entry (GRUB)",
		     "after the reboot, the Proxmox kernel running: ok");
	t_result_free(&r);
	free(cfg);
	t_cleanup(root);

	/* The package brings no kernel (a stand-in): failed, not a reboot into nothing. */
	cfg = config("\"vms\": []", KEY_SHA512);
	root = tree(cfg);
	flag(root, "no-kernel", "");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=proxmox-kernel state=failed 'pve1' is 10.0.2.15 in '/etc/hosts'; proxmox-default-kernel installed from",
		     "no Proxmox kernel in /boot after the install: failed ...");
	tap_contains(r.out, ", but there is no Proxmox kernel in '/boot' (no 'vmlinuz-*-pve')\n", "... saying so");
	t_result_free(&r);
	free(cfg);
	t_cleanup(root);
}

/* The Proxmox kernel is not the loader's default: made so before the reboot, or failed. */
static void test_default_entry(void)
{
	/* GRUB pinned to the Debian kernel by its entry ids. */
	char *cfg = config("\"vms\": []", KEY_SHA512), *root = tree(cfg);
	t_write(root, "etc/default/grub", "GRUB_DEFAULT=\"gnulinux-advanced-0a1b2c3d-0000-4000-8000-00000000abcd>gnulinux-" DEBIAN_KERNEL
					  "-advanced-0a1b2c3d-0000-4000-8000-00000000abcd\"\nGRUB_TIMEOUT=5\n");
	mkgrub(root);
	struct t_result r = t_run(root, NULL);
	char *grub = t_read(root, "etc/default/grub"), *c = calls(root), *ug = t_strf("install proxmox-default-kernel\nchroot %s update-grub\n", root);
	tap_ok(strstr(r.out, "step=proxmox-kernel state=reboot ") &&
		       strstr(r.out, "the Proxmox kernel " PVE " is the default boot entry (GRUB: GRUB_DEFAULT=0 in '/etc/default/grub' and "
				     "update-grub (the default was 'Debian GNU/Linux, with Linux " DEBIAN_KERNEL "', GRUB's default "
				     "'gnulinux-advanced-") &&
		       grub && STREQ(grub, "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n") && strstr(c, ug),
	       "GRUB pinned to the Debian kernel: GRUB_DEFAULT=0 (the newest kernel), update-grub, then the reboot");
	free(grub), free(c), free(ug);
	t_result_free(&r);
	t_write(root, "proc/sys/kernel/osrelease", PVE "\n");
	boot_id(root, BOOT_ID_B);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=proxmox-kernel state=ok running the Proxmox kernel " PVE ", the default boot entry (GRUB)",
		     "GRUB: after the reboot, ok");
	t_result_free(&r);
	t_cleanup(root);

	/* systemd-boot: loader.conf names the Debian entry (as the image builder writes it). */
	root = tree(cfg);
	char *g = t_strf("%s/etc/default/grub", root);
	unlink(g);
	free(g);
	t_write(root, "etc/kernel/cmdline", "root=UUID=x ro console=ttyS0\n");
	t_write(root, "boot/efi/loader/loader.conf", "timeout 0\neditor no\ndefault pmoves-" DEBIAN_KERNEL ".conf\n");
	t_write(root, "boot/efi/loader/entries/pmoves-" DEBIAN_KERNEL ".conf",
		"title proxmox-core\nversion " DEBIAN_KERNEL "\nlinux /pmoves/" DEBIAN_KERNEL "/linux\n");
	r = t_run(root, NULL);
	char *conf = t_read(root, "boot/efi/loader/loader.conf");
	tap_ok(strstr(r.out, "the Proxmox kernel " PVE " is the default boot entry (systemd-boot: 'default *-pve.conf' in "
			     "'/boot/efi/loader/loader.conf' (the default was 'pmoves-" DEBIAN_KERNEL ".conf'") &&
		       strstr(r.out, "step=proxmox-kernel state=reboot") && conf && STREQ(conf, "timeout 0\neditor no\ndefault *-pve.conf\n"),
	       "systemd-boot with the Debian entry as loader.conf's default: 'default *-pve.conf', then the reboot");
	free(conf);
	t_result_free(&r);
	/* After the reboot the Proxmox kernel runs, but the default went back to Debian's. */
	t_write(root, "proc/sys/kernel/osrelease", PVE "\n");
	boot_id(root, BOOT_ID_B);
	t_write(root, "boot/efi/loader/loader.conf", "default pmoves-" DEBIAN_KERNEL ".conf\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=proxmox-kernel state=failed the Proxmox kernel " PVE " runs, but the next boot would not start it: "
			    "systemd-boot's default entry 'pmoves-" DEBIAN_KERNEL ".conf' boots '" DEBIAN_KERNEL "'",
		     "systemd-boot: the Proxmox kernel runs but is not the default: not ok, says what the default boots");
	t_result_free(&r);
	r = t_run(root, NULL);
	conf = t_read(root, "boot/efi/loader/loader.conf");
	tap_ok(strstr(r.out, "step=proxmox-kernel state=ok running the Proxmox kernel " PVE ", the default boot entry (systemd-boot)") &&
		       conf && STREQ(conf, "default *-pve.conf\n") && !strstr(r.out, "state=reboot"),
	       "systemd-boot: a later run makes it the default again, no reboot needed: ok");
	free(conf);
	t_result_free(&r);
	t_cleanup(root);

	/* systemd-boot with the LoaderEntryDefault EFI variable on the Debian entry: failed. */
	root = tree(cfg);
	g = t_strf("%s/etc/default/grub", root);
	unlink(g);
	free(g);
	t_write(root, "etc/kernel/cmdline", "root=UUID=x ro\n");
	t_write(root, "boot/efi/loader/loader.conf", "timeout 0\n");
	t_write(root, "boot/efi/loader/entries/pmoves-" DEBIAN_KERNEL ".conf", "title x\nversion " DEBIAN_KERNEL "\nlinux /x/linux\n");
	static const char var[] = { 7, 0, 0, 0, 'p', 0, 'm', 0, 'o', 0, 'v', 0, 'e', 0, 's', 0, '-', 0, '6', 0, '.', 0, '1', 0,
				    '.', 0, '0', 0, '-', 0, '2', 0, '8', 0, '-', 0, 'a', 0, 'm', 0, 'd', 0, '6', 0, '4', 0, '.', 0,
				    'c', 0, 'o', 0, 'n', 0, 'f', 0, 0, 0 };
	char *vp = t_strf("%s/sys/firmware/efi/efivars/LoaderEntryDefault-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", root),
	     *vd = strndup(vp, (size_t)(strrchr(vp, '/') - vp));
	mkdir_p(vd, 0755);
	write_file_atomic(vp, var, sizeof(var), 0644);
	r = t_run(root, NULL);
	tap_ok(strstr(r.out, "step=proxmox-kernel state=failed ") &&
		       strstr(r.out, "the Proxmox kernel is installed but cannot be made the default boot entry: the default entry is 'pmoves-" DEBIAN_KERNEL
				     ".conf', chosen by the EFI variable LoaderEntryDefault ('pmoves-" DEBIAN_KERNEL ".conf') over "
				     "loader.conf: remove it with 'bootctl set-default \"\"'") &&
		       !strstr(r.out, "state=reboot"),
	       "systemd-boot with LoaderEntryDefault on the Debian entry: failed with the reason, no reboot");
	free(vp), free(vd), free(cfg);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_offline(void)
{
	/* A repository nobody answers at (a closed port): pending, and nothing changed. */
	char *cfg = t_strf("{ \"steps\": { \"growfs\": { \"enabled\": false }, \"ssh\": { \"enabled\": false },"
			   " \"efiboot\": { \"enabled\": false } }, \"proxmox\": { \"repository\": \"http://127.0.0.1:1/pve\","
			   " \"key\": { \"url\": \"http://127.0.0.1:1/k.gpg\", \"sha512\": \"%s\" } } }",
			   KEY_SHA512);
	char *root = tree(cfg), *sd = t_strf("%s/var/lib/pmoves/firstboot", root);
	mkdir_p(sd, 0755); /* state and status go there: not what the step changes */
	free(sd);
	char *before = t_tree_digest(root, true);
	struct t_result r = t_run(root, NULL);
	char *after = t_tree_digest(root, true), *c = calls(root);
	tap_ok(r.status == 1 && strstr(r.out, "step=proxmox-kernel state=pending the Proxmox repository is unreachable "
					      "(cannot fetch 'http://127.0.0.1:1/pve/dists/bookworm/Release':") &&
		       strstr(r.out, "trying again on a later run"),
	       "no repository: proxmox-kernel pending, with the URL and the reason");
	tap_ok(strstr(r.out, "step=proxmox-ve state=pending waiting for step 'proxmox-kernel'") &&
		       strstr(r.out, "step=proxmox-vms state=pending waiting for step 'proxmox-ve'") &&
		       strstr(r.out, "done status=degraded"),
	       "the later proxmox steps wait (pending), the run ends degraded");
	tap_ok(STREQ(before, after) && !strstr(c, "apt-get") && !strstr(c, "disable pmoves-firstboot"),
	       "nothing written, no apt-get, the unit stays enabled for a later run");
	free(before), free(after), free(c), free(cfg);
	t_result_free(&r);
	t_cleanup(root);

	/* No route at all: pending before anything is fetched. */
	cfg = config(NULL, KEY_SHA512);
	root = tree(cfg);
	flag(root, "no-route", "");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=proxmox-kernel state=pending no IPv4 address yet (no network)", "no address: pending");
	t_result_free(&r);
	/* An address but no default route (QEMU's restricted network): the address is used. */
	flag(root, "no-route", NULL);
	flag(root, "no-default-route", "");
	flag(root, "apt-update.rc", "100\n");
	calls_reset(root);
	r = t_run(root, NULL);
	char *c2 = calls(root), *hosts = t_read(root, "etc/hosts");
	tap_ok(strstr(c2, "ip -4 -o route get 192.0.2.1\nip -4 -o addr show scope global\n") && hosts &&
		       strstr(hosts, "10.0.2.16\tpve1\n"),
	       "no default route: the first global address goes into /etc/hosts");
	free(c2), free(hosts);
	flag(root, "no-default-route", NULL);
	t_result_free(&r);
	/* apt-get update failing (a mirror down): pending too. */
	r = t_run(root, NULL);
	tap_contains(r.out, "step=proxmox-kernel state=pending 'apt-get update' exited with 100", "apt-get update failing: pending");
	t_result_free(&r);
	/* The network is back: the same tree finishes the step. */
	flag(root, "apt-update.rc", NULL);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=proxmox-kernel state=reboot", "a later run with the network goes on to the reboot");
	t_result_free(&r);
	free(cfg);
	t_cleanup(root);
}

static void test_bad_key(void)
{
	char *cfg = config(NULL, "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
				 "000000000000000000000000000000000000"),
	     *root = tree(cfg);
	struct t_result r = t_run(root, NULL);
	char *c = calls(root);
	tap_ok(strstr(r.out, "step=proxmox-kernel state=failed the release key from 'http://127.0.0.1:") &&
		       strstr(r.out, "has SHA-512 46e56ad30db9ef50..., not the expected 0000000000000000...: not installed") &&
		       !t_exists(root, "etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg") &&
		       !t_exists(root, "etc/apt/sources.list.d/pve-install-repo.list") && !strstr(c, "apt-get"),
	       "a key with another SHA-512: failed, no key, no repository, no apt-get");
	free(c), free(cfg);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_dry_run(void)
{
	char *cfg = config(NULL, KEY_SHA512), *root = tree(cfg);
	char *before = t_tree_digest(root, false);
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, "--dry-run", NULL };
	struct t_result r = t_fb(root, NULL, argv);
	char *after = t_tree_digest(root, false), *c = calls(root);
	char *want = t_strf("pmoves-firstboot: would write /etc/hosts (mode 0644, %zu bytes):\n"
			    "  | 127.0.0.1\tlocalhost\n  | 10.0.2.15\tpve1\n  | ::1\tlocalhost ip6-localhost ip6-loopback\n"
			    "pmoves-firstboot: would write /etc/apt/sources.list.d/pve-install-repo.list",
			    strlen(HOSTS_AFTER));
	tap_contains(r.out, want, "dry run: the new /etc/hosts and the sources list, as they would be written");
	char *fetch = t_strf("pmoves-firstboot: would fetch http://127.0.0.1:%d/proxmox-release-bookworm.gpg into "
			     "/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg if its SHA-512 is " KEY_SHA512,
			     server_port);
	tap_contains(r.out, fetch, "dry run: the key's URL, path and SHA-512");
	char *run = t_strf("pmoves-firstboot: would run chroot %s " APT " install proxmox-default-kernel\n"
			   "pmoves-firstboot: plan step=proxmox-kernel result would end reboot",
			   root);
	tap_contains(r.out, run, "dry run: the apt-get commands in chroot, then 'would end reboot'");
	tap_ok(STREQ(before, after) && STREQ(c, "ip -4 -o route get 192.0.2.1\n"),
	       "dry run: the tree is unchanged; only the route query ran");
	free(before), free(after), free(c), free(want), free(fetch), free(run), free(cfg);
	t_result_free(&r);
	t_cleanup(root);
}

/* proxmox-bridge, on a tree taken for the running system (PMOVES_FIRSTBOOT_LIVE=1: every
 * command goes to the stand-in): ens3 has 10.0.2.15/24 by DHCP, gateway 10.0.2.2, and
 * systemd-resolved has 10.0.2.3 and a search domain from the lease. */
#define LIVE "PMOVES_FIRSTBOOT_LIVE=1"
#define DEBIAN_INTERFACES "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n"
#define BRIDGE_CALLS                                                                                     \
	"ip -4 -o route get 192.0.2.1\nip -4 -o addr show dev ens3\nnetworkctl reload\n"                  \
	"networkctl list --no-legend --no-pager ens3\nnetworkctl list --no-legend --no-pager ens3\n"     \
	"ip -4 addr flush dev ens3\nip -4 route flush dev ens3\nifreload -a\nip -4 -o addr show dev vmbr0\n" \
	"systemctl --no-block try-restart systemd-resolved.service\n"                                   \
	"systemctl --quiet disable systemd-networkd-wait-online.service\n"
#define VMBR0_INTERFACES                                                                                  \
	"# Written by pmoves-firstboot (proxmox-bridge): the Proxmox bridge on the uplink, with the\n"      \
	"# address the uplink had (from DHCP, now static). Proxmox edits this file (System > Network).\n"  \
	"auto lo\niface lo inet loopback\n\niface ens3 inet manual\n\n"                                     \
	"auto vmbr0\niface vmbr0 inet static\n\taddress 10.0.2.15/24\n\tgateway 10.0.2.2\n"                 \
	"\tbridge-ports ens3\n\tbridge-stp off\n\tbridge-fd 0\n\nsource /etc/network/interfaces.d/*\n"

static char *bridge_tree(void)
{
	char *cfg = t_strf("{ \"steps\": { \"growfs\": { \"enabled\": false }, \"ssh\": { \"enabled\": false },"
			   " \"efiboot\": { \"enabled\": false }, \"proxmox-kernel\": { \"enabled\": false },"
			   " \"proxmox-ve\": { \"enabled\": false }, \"proxmox-vms\": { \"enabled\": false } },"
			   " \"proxmox\": {} }\n"),
	     *root = tree(cfg);
	t_write(root, "usr/sbin/ifreload", "#!/bin/sh\n");
	t_write(root, "etc/network/interfaces", DEBIAN_INTERFACES);
	t_write(root, "run/systemd/resolve/resolv.conf",
		"# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\n"
		"nameserver 10.0.2.3\nnameserver fec0::3\nsearch lab.example\n");
	free(cfg);
	return root;
}

static void test_bridge(void)
{
	char *root = bridge_tree();
	struct t_result r = t_run(root, LIVE);
	char *c = calls(root), *ifs = t_read(root, "etc/network/interfaces"),
	     *nd = t_read(root, "etc/systemd/network/10-pmoves-proxmox-bridge.network"),
	     *rs = t_read(root, "etc/systemd/resolved.conf.d/pmoves-proxmox.conf");
	tap_contains(r.out, "step=proxmox-bridge state=ok 'vmbr0' over 'ens3' with 10.0.2.15/24, gateway 10.0.2.2 (static, the "
			    "uplink's address); DNS servers kept for systemd-resolved",
		     "proxmox-bridge: vmbr0 over the default route's NIC, with its address and gateway");
	tap_contains(c, BRIDGE_CALLS, "route and address read; networkd reloaded and waited for until it lets go of ens3 (asked "
				      "again), the port's address and routes flushed, "
				      "ifreload -a, the bridge's address checked, resolved restarted, networkd's wait-online disabled");
	tap_is_str(ifs, VMBR0_INTERFACES, "/etc/network/interfaces: the port manual, vmbr0 static with the lease's address");
	tap_is_str(nd, "# Written by pmoves-firstboot (proxmox-bridge): ifupdown2 owns these (/etc/network/interfaces).\n"
		       "[Match]\nName=ens3 vmbr0\n\n[Link]\nUnmanaged=yes\n",
		   "networkd leaves ens3 and vmbr0 alone");
	tap_is_str(rs, "# Written by pmoves-firstboot (proxmox-bridge): the DNS servers of the uplink's lease, now\n"
		       "# that systemd-networkd leaves the uplink to ifupdown2.\n[Resolve]\nDNS=10.0.2.3 fec0::3\n"
		       "Domains=lab.example\n",
		   "resolved keeps the lease's DNS servers and search domain");
	free(c), free(ifs), free(nd), free(rs);
	t_result_free(&r);

	/* Done: a later run (no state) finds the stanza and runs nothing. */
	char *state = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(state);
	free(state);
	calls_reset(root);
	r = t_run(root, LIVE);
	c = calls(root);
	tap_ok(strstr(r.out, "step=proxmox-bridge state=skipped 'vmbr0' is in '/etc/network/interfaces': left as it is") &&
		       !strstr(c, "ifreload") && !strstr(c, "networkctl"),
	       "a later run: the stanza is there, left as it is, nothing runs");
	free(c);
	t_result_free(&r);
	t_cleanup(root);

	/* ifreload fails: the old interfaces file is back, networkd has the NIC again. */
	root = bridge_tree();
	flag(root, "ifreload.rc", "1\n");
	r = t_run(root, LIVE);
	c = calls(root);
	ifs = t_read(root, "etc/network/interfaces");
	tap_ok(strstr(r.out, "step=proxmox-bridge state=failed 'ifreload -a' exited with 1: the old network configuration is back") &&
		       ifs && STREQ(ifs, DEBIAN_INTERFACES) && !t_exists(root, "etc/systemd/network/10-pmoves-proxmox-bridge.network") &&
		       strstr(c, "ifreload -a\nnetworkctl reload\nnetworkctl reconfigure ens3\n"),
	       "ifreload failing: interfaces restored, the networkd file removed, networkd reconfigures ens3");
	free(c), free(ifs);
	t_result_free(&r);
	/* networkd never lets go of ens3: nothing flushed, nothing reloaded by ifupdown2. */
	flag(root, "ifreload.rc", NULL);
	flag(root, "networkd-holds", "");
	calls_reset(root);
	r = t_run(root, LIVE);
	c = calls(root);
	ifs = t_read(root, "etc/network/interfaces");
	tap_ok(strstr(r.out, "step=proxmox-bridge state=failed systemd-networkd did not let go of 'ens3' within 10 s of "
			     "'networkctl reload': the old network configuration is back") &&
		       ifs && STREQ(ifs, DEBIAN_INTERFACES) && !strstr(c, "flush") && !strstr(c, "ifreload") &&
		       strstr(c, "networkctl reload\nnetworkctl reconfigure ens3\n"),
	       "networkd holding on to the uplink: failed before any flush or ifreload, interfaces restored");
	free(c), free(ifs);
	t_result_free(&r);
	flag(root, "networkd-holds", NULL);
	/* ifreload exits 0 but ens3 is no port of vmbr0: the same. */
	flag(root, "ifreload.rc", NULL);
	flag(root, "no-port", "");
	r = t_run(root, LIVE);
	ifs = t_read(root, "etc/network/interfaces");
	tap_ok(strstr(r.out, "step=proxmox-bridge state=failed after 'ifreload -a' 'ens3' is not a port of 'vmbr0'") && ifs &&
		       STREQ(ifs, DEBIAN_INTERFACES),
	       "the bridge not formed after ifreload: failed, interfaces restored");
	free(ifs);
	t_result_free(&r);
	t_cleanup(root);

	/* An interfaces file that configures a NIC: not rewritten. */
	root = bridge_tree();
	t_write(root, "etc/network/interfaces", DEBIAN_INTERFACES "\nallow-hotplug eno1\niface eno1 inet dhcp\n");
	r = t_run(root, LIVE);
	c = calls(root);
	ifs = t_read(root, "etc/network/interfaces");
	tap_ok(strstr(r.out, "step=proxmox-bridge state=failed '/etc/network/interfaces' configures 'eno1' already: add the "
			     "bridge 'vmbr0' there yourself") &&
		       ifs && STREQ(ifs, DEBIAN_INTERFACES "\nallow-hotplug eno1\niface eno1 inet dhcp\n") &&
		       !t_exists(root, "etc/systemd/network/10-pmoves-proxmox-bridge.network") &&
		       !t_exists(root, "etc/systemd/resolved.conf.d/pmoves-proxmox.conf") && !strstr(c, "ifreload") &&
		       !strstr(c, "flush") && !strstr(c, "networkctl"),
	       "interfaces configuring eno1: failed with its name, nothing written or run");
	free(ifs), free(c);
	t_result_free(&r);
	t_cleanup(root);

	/* No ifreload (proxmox-ve not installed yet), no default route, a tree: pending. */
	root = bridge_tree();
	char *ifr = t_strf("%s/usr/sbin/ifreload", root);
	unlink(ifr);
	free(ifr);
	r = t_run(root, LIVE);
	tap_contains(r.out, "step=proxmox-bridge state=pending waiting for step 'proxmox-ve' (no '/usr/sbin/ifreload': "
			    "ifupdown2 comes with proxmox-ve)",
		     "no ifreload: pending, waiting for proxmox-ve");
	t_result_free(&r);
	t_write(root, "usr/sbin/ifreload", "#!/bin/sh\n");
	flag(root, "no-route", "");
	r = t_run(root, LIVE);
	tap_ok(strstr(r.out, "step=proxmox-bridge state=pending no IPv4 default route yet (no network)") &&
		       !t_exists(root, "etc/systemd/network/10-pmoves-proxmox-bridge.network"),
	       "no default route: pending, nothing written");
	t_result_free(&r);
	/* An apply cut short after the networkd file: removed, networkd reloaded, then done. */
	flag(root, "no-route", NULL);
	t_write(root, "etc/systemd/network/10-pmoves-proxmox-bridge.network", "[Match]\nName=ens3 vmbr0\n[Link]\nUnmanaged=yes\n");
	calls_reset(root);
	r = t_run(root, LIVE);
	c = calls(root);
	tap_ok(strstr(r.out, "step=proxmox-bridge state=ok 'vmbr0' over 'ens3'") &&
		       strstr(c, "networkctl reload\nip -4 -o route get 192.0.2.1\n") &&
		       t_exists(root, "etc/systemd/network/10-pmoves-proxmox-bridge.network"),
	       "a networkd file left by a cut-off apply: networkd gets the NIC back first, then the bridge is made");
	free(c);
	t_result_free(&r);
	t_cleanup(root);

	/* Dry run: what would be written and run, nothing changed. */
	root = bridge_tree();
	char *before = t_tree_digest(root, false);
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, "--dry-run", NULL };
	r = t_fb(root, LIVE, argv);
	char *after = t_tree_digest(root, false);
	c = calls(root);
	tap_ok(strstr(r.out, "would write /etc/network/interfaces (mode 0644, ") && strstr(r.out, "  | iface vmbr0 inet static\n") &&
		       strstr(r.out, "would run ifreload -a\n") && STREQ(before, after) &&
		       strstr(c, "ip -4 -o route get 192.0.2.1\nip -4 -o addr show dev ens3\n") && !strstr(c, "ifreload") &&
		       !strstr(c, "networkctl") && !strstr(c, "flush"),
	       "dry run: the interfaces file and ifreload -a shown, only the reads ran, the tree unchanged");
	free(before), free(after), free(c);
	t_result_free(&r);
	t_cleanup(root);

	/* Not the running system: pending without reading the host's network. */
	root = bridge_tree();
	r = t_run(root, NULL);
	c = calls(root);
	tap_ok(strstr(r.out, "step=proxmox-bridge state=pending 'vmbr0' takes the uplink's live address") && !strstr(c, "ip -4"),
	       "a tree: pending, the build host's network is not read");
	free(c);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_validate(void)
{
	static const struct {
		const char *proxmox, *error;
	} bad[] = {
		{ "{ \"key\": { \"url\": \"https://example.org/k.gpg\" } }", ".proxmox.key.sha512: is required" },
		{ "{ \"address\": \"127.0.1.1\" }", "is a loopback address" },
		{ "{ \"repository\": \"ftp://x.example/pve\" }", "is not an http:// or https:// URL" },
		{ "{ \"vms\": [ { \"id\": 100, \"name\": \"a\" }, { \"id\": 100, \"name\": \"b\" } ] }", "VM ID 100 is given twice" },
		{ "{ \"vms\": [ { \"id\": 100, \"name\": \"a\", \"gpu\": true }, { \"id\": 101, \"name\": \"b\", \"gpu\": true } ] }",
		  "2 VMs ask for the GPU" },
		{ "{ \"vms\": [ { \"id\": 99, \"name\": \"a\" } ] }", "from 100 to 999999999" },
		{ "{ \"vms\": [ { \"id\": 100, \"name\": \"a\", \"memory\": \"1.5G\" } ] }", "is not a memory size" },
		{ "{ \"vms\": [ { \"id\": 100, \"name\": \"a\", \"disk_image\": \"/x/a,b.qcow2\" } ] }", "is not an absolute path" },
		{ "{ \"gpu\": [ \"01:00.9\" ] }", "is not a PCI slot" },
		{ "{ \"postfix\": \"internet\" }", "is not 'none'" },
	};
	char *root = t_tree();
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *text = t_strf("{ \"proxmox\": %s }", bad[i].proxmox), *file = t_beside(root, "bad.json");
		write_file_atomic(file, text, strlen(text), 0644);
		char *argv[] = { "pmoves-firstboot", "validate", file, NULL };
		struct t_result r = t_fb(root, NULL, argv);
		if (!tap_ok(r.status == 2 && r.err && strstr(r.err, bad[i].error), "validate refuses %s", bad[i].proxmox))
			tap_diag("status %d, stderr '%s'", r.status, r.err ? r.err : "");
		t_result_free(&r);
		free(text), free(file);
	}
	char *good = t_strf("{ \"iommu\": {}, \"proxmox\": { \"gpu\": [ \"01:00\", \"0000:02:00.0\" ], \"vms\": [ { \"id\": 100,"
			    " \"name\": \"docker-host\", \"memory\": \"32G\", \"cores\": 8, \"gpu\": true } ] } }"),
	     *file = t_beside(root, "good.json");
	write_file_atomic(file, good, strlen(good), 0644);
	char *argv[] = { "pmoves-firstboot", "validate", file, NULL };
	struct t_result r = t_fb(root, NULL, argv);
	tap_is_int(r.status, 0, "validate accepts slots, functions and a VM list");
	t_result_free(&r);
	free(good), free(file);
	t_cleanup(root);
}

int main(void)
{
	if (access("/usr/bin/awk", X_OK) != 0 && access("/bin/awk", X_OK) != 0)
		tap_skip_all("awk is missing (the stand-in apt-get uses it)");
	if (!realpath("tests/fixtures/standins/update-grub", update_grub))
		tap_skip_all("tests/fixtures/standins/update-grub not found (run from the top of the tree)");
	if (!mkdtemp(www))
		abort();
	char key[300];
	for (int i = 0; i < 300; i++)
		key[i] = (char)((i * 7 + 3) % 256);
	char *kp = t_strf("%s/proxmox-release-bookworm.gpg", www);
	write_file_atomic(kp, key, sizeof(key), 0644);
	t_write(www, "pve/dists/bookworm/Release", "Origin: stand-in for Proxmox\nSuite: bookworm\n");
	server_start(www);
	tap_plan(81);
	test_sequence();
	test_existing_vm();
	test_cluster_vmlist();
	test_running_debian_kernel();
	test_installed_not_running();
	test_default_entry();
	test_offline();
	test_bad_key();
	test_dry_run();
	test_bridge();
	test_validate();
	kill(server_pid, SIGTERM);
	waitpid(server_pid, NULL, 0);
	rm_rf(www);
	free(kp);
	return tap_done();
}
