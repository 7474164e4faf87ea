/* pmoves-sandbox's config and task spec: what is accepted, what is refused with which message,
 * and the firewall table net-up loads (checked by nft itself when it can run here). */
#include "hash.h"
#include "log.h"
#include "run.h"
#include "sbx.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

static char dir[] = "/tmp/test-sbx-config-XXXXXX";
static int msg_fd = -1;

static char *write_tmp(const char *name, const char *text)
{
	char *path = strdupf("%s/%s", dir, name);
	if (!path || write_file_atomic(path, text, strlen(text), 0644) < 0)
		abort();
	return path;
}

/* The messages logged since the last call. */
static char *messages(void)
{
	static char buf[8192];
	ssize_t n = pread(msg_fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	if (ftruncate(msg_fd, 0) < 0 || lseek(msg_fd, 0, SEEK_SET) < 0)
		abort();
	return buf;
}

/* A spec whose command is echo and N words of 68 digits (73 bytes each in the guest's request). */
static char *echo_words(int n)
{
	_cleanup_strv_ char **w = NULL;
	int r = strv_push(&w, "\"echo\"");
	for (int i = 0; r == 0 && i < n; i++)
		r = strv_pushf(&w, "\"%068d\"", i);
	_cleanup_free_ char *list = r == 0 ? strv_join(w, ", ") : NULL;
	char *spec = list ? strdupf("{\"command\": [%s]}", list) : NULL;
	if (!spec)
		abort();
	return spec;
}

static void spec_refused(const char *name, const char *text, const char *want)
{
	_cleanup_free_ char *path = write_tmp(name, text);
	struct sbx_spec s;
	messages();
	int r = sbx_spec_load(path, &s);
	tap_is_int(r, -EINVAL, "spec %s: refused", name);
	tap_contains(messages(), want, "... %s", want);
}

static void config_refused(const char *name, const char *text, const char *want)
{
	_cleanup_free_ char *path = write_tmp(name, text);
	struct sbx_config c;
	messages();
	int r = sbx_config_load(path, &c);
	sbx_config_free(&c);
	tap_is_int(r, -EINVAL, "config %s: refused", name);
	tap_contains(messages(), want, "... %s", want);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	msg_fd = memfd_create("messages", MFD_CLOEXEC);
	log_fd_extra = msg_fd;

	/* ---- specs ---- */
	const char *text = "{\"command\": [\"python3\", \"-c\", \"print(1)\"], \"vcpus\": 2, \"memory_mib\": 512,"
			   " \"ttl_s\": 30, \"network\": false}";
	_cleanup_free_ char *path = write_tmp("good.json", text);
	struct sbx_spec s;
	int r = sbx_spec_load(path, &s);
	tap_is_int(r, 0, "a full spec loads");
	tap_ok(r == 0 && s.vcpus == 2 && s.memory_mib == 512 && s.ttl_s == 30 && !s.network, "... with its values");
	tap_ok(r == 0 && strv_length(s.command) == 3 && STREQ(s.command[2], "print(1)"), "... and its command");
	char want[65];
	sha256_hex_of(text, strlen(text), want);
	tap_is_str(s.sha256, want, "... its sha256 is the file's bytes'");
	sbx_spec_free(&s);
	_cleanup_free_ char *min = write_tmp("min.json", "{\"command\": [\"true\"]}");
	r = sbx_spec_load(min, &s);
	tap_ok(r == 0 && s.vcpus == 1 && s.memory_mib == 256 && s.ttl_s == 300 && s.network, "defaults: 1 vCPU, 256 MiB, 300 s, network");
	sbx_spec_free(&s);

	spec_refused("unknown.json", "{\"command\": [\"true\"], \"ttl\": 5}", "unknown.json: 'ttl' is not a key here");
	spec_refused("nocmd.json", "{\"vcpus\": 1}", "'command' must be a list of 1 to 1000 strings");
	spec_refused("emptycmd.json", "{\"command\": []}", "'command' must be a list of 1 to 1000 strings");
	spec_refused("emptyprog.json", "{\"command\": [\"\"]}", "'command' must be strings without NUL bytes, a program first");
	spec_refused("nul.json", "{\"command\": [\"a\\u0000b\"]}", "'command' must be strings without NUL bytes");
	spec_refused("number.json", "{\"command\": [\"sleep\", 5]}", "'command' must be strings");
	spec_refused("vcpus.json", "{\"command\": [\"true\"], \"vcpus\": 33}", "'vcpus' must be a whole number from 1 to 32");
	spec_refused("vcpus0.json", "{\"command\": [\"true\"], \"vcpus\": 0}", "'vcpus' must be a whole number from 1 to 32");
	spec_refused("mem.json", "{\"command\": [\"true\"], \"memory_mib\": 63}", "'memory_mib' must be a whole number from 64");
	spec_refused("ttl.json", "{\"command\": [\"true\"], \"ttl_s\": 0}", "'ttl_s' must be a whole number from 1");
	spec_refused("ttlstr.json", "{\"command\": [\"true\"], \"ttl_s\": \"60\"}", "'ttl_s' must be a whole number");
	spec_refused("net.json", "{\"command\": [\"true\"], \"network\": 1}", "'network' must be true or false");
	spec_refused("array.json", "[\"true\"]", "not a JSON object");
	spec_refused("trailing.json", "{\"command\": [\"true\"]} x", "not JSON");
	/* 60000 bytes of words at most: the guest's request is 64 KiB. */
	_cleanup_free_ char *long_spec = echo_words(850), *huge_spec = echo_words(1150);
	spec_refused("long.json", long_spec, "60000 bytes in all");
	spec_refused("huge.json", huge_spec, "huge.json: larger than 64 KiB");

	/* ---- the machine's config ---- */
	struct sbx_config c;
	r = sbx_config_load(NULL, &c);
	tap_ok(r == 0 && STREQ(c.backend, "auto") && STREQ(c.state_dir, "/run/pmoves-sandbox") &&
		       STREQ(c.audit_log, "/var/log/pmoves/sandbox/audit.log") && STREQ(c.user, "pmoves-sandbox") &&
		       STREQ(c.bridge, "sbx0") && c.net == 0x0a4d0000 && c.prefix == 24 && c.output_max == 1u << 20 &&
		       c.uid_first == 0x70000000 && c.uid_count == 2048,
	       "no config file: the built-in defaults (the VMMs' ids 0x70000000 and 2047 more)");
	sbx_config_free(&c);
	_cleanup_free_ char *cfg = write_tmp("cfg.json", "{\"backend\": \"qemu\", \"subnet\": \"172.31.8.0/22\", "
							 "\"bridge\": \"\", \"dns\": \"9.9.9.9\", \"output_max\": 4096, \"uids\": \"\"}");
	r = sbx_config_load(cfg, &c);
	tap_ok(r == 0 && STREQ(c.backend, "qemu") && c.net == 0xac1f0800 && c.prefix == 22 && !c.bridge[0] &&
		       STREQ(c.dns, "9.9.9.9") && c.output_max == 4096 && c.uid_count == 0,
	       "a config's values replace the defaults (uids \"\": every VMM as the sandbox user)");
	sbx_config_free(&c);
	_cleanup_free_ char *cfg_ids = write_tmp("cfg-ids.json", "{\"uids\": \"65536-131071\"}");
	r = sbx_config_load(cfg_ids, &c);
	tap_ok(r == 0 && c.uid_first == 65536 && c.uid_count == 65536, "uids: a range of 65536 ids from 65536");
	sbx_config_free(&c);
	config_refused("c-unknown.json", "{\"kernal\": \"/x\"}", "'kernal' is not a key here");
	config_refused("c-backend.json", "{\"backend\": \"xen\"}", "'backend' names no backend (auto, firecracker, qemu)");
	config_refused("c-accel.json", "{\"accel\": \"hvf\"}", "'accel' must be \"auto\", \"kvm\" or \"tcg\"");
	config_refused("c-rel.json", "{\"rootfs\": \"rootfs.ext4\"}", "'rootfs' must be an absolute path");
	config_refused("c-dots.json", "{\"state_dir\": \"/run/../etc\"}", "'state_dir' must be an absolute path without '..'");
	config_refused("c-hostbits.json", "{\"subnet\": \"10.77.0.1/24\"}", "'subnet' must be an IPv4 network");
	config_refused("c-prefix.json", "{\"subnet\": \"10.77.0.0/30\"}", "N from 16 to 29");
	config_refused("c-bridge.json", "{\"bridge\": \"a-very-long-bridge-name\"}", "'bridge' must be an interface name");
	config_refused("c-uplink.json", "{\"uplink\": \"eth0; reboot\"}", "'uplink' must be an interface name");
	config_refused("c-dns.json", "{\"dns\": \"dns.example\"}", "'dns' must be an IPv4 address");
	config_refused("c-user.json", "{\"user\": \"../root\"}", "'user' must be a user name");
	config_refused("c-out.json", "{\"output_max\": 1}", "'output_max' must be a whole number from 4096");
	config_refused("c-con.json", "{\"console_max\": 4096}", "'console_max' must be a whole number from 65536");
	static const char *const bad_uids[] = { "1000-2000", "65536", "70000-69999", "65536-131072", "2147483000-2147483648",
						"x-70000", "70000-", "-70000", " 70000-70001", "+70000-70001" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_uids); i++) {
		char body[96], name[32];
		snprintf(body, sizeof(body), "{\"uids\": \"%s\"}", bad_uids[i]);
		snprintf(name, sizeof(name), "c-uids%zu.json", i);
		config_refused(name, body, "'uids' must be \"FIRST-LAST\": at most 65536 ids from 65536 to 2147483647");
	}

	/* ---- the firewall ---- */
	r = sbx_config_load(NULL, &c);
	_cleanup_free_ char *nft = sbx_net_nft(&c, "up0");
	tap_contains(nft, "iifname \"sbx0\" drop", "nft: nothing from the bridge reaches the host");
	tap_contains(nft, "iifname \"sbx0\" oifname != \"up0\" drop", "nft: forwarded only to the uplink");
	tap_contains(nft, "iifname \"sbx0\" ip saddr != 10.77.0.0/24 drop", "nft: from the subnet's addresses only (no forged source)");
	tap_contains(nft, "10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16",
		     "nft: never to the LAN ranges, the tailnet's, loopback, link local");
	tap_contains(nft, "ip saddr 10.77.0.0/24 oifname \"up0\" masquerade", "nft: the subnet masqueraded on the uplink");
	tap_contains(nft, "iifname @ports ether type ip iifname . ether saddr . ip saddr != @bound drop",
		     "nft: a tap's IPv4 frames carry its own MAC and address (bridge table)");
	tap_contains(nft, "iifname @ports ether type arp iifname . arp saddr ether . arp saddr ip != @bound drop",
		     "nft: ... and its ARP its own, so a guest cannot claim another sandbox's address");
	tap_contains(nft, "iifname @ports ether type != { ip, arp } drop", "nft: ... and nothing but IPv4 and ARP");
	/* Offline (no default route, no uplink named): forwarded nowhere, nothing masqueraded. */
	_cleanup_free_ char *offline = sbx_net_nft(&c, "");
	tap_contains(offline, "\t\tiifname \"sbx0\" drop\n\t\tiifname \"sbx0\" meta nfproto", "nft without an uplink: nothing from the bridge is forwarded");
	tap_ok(offline && !strstr(offline, "masquerade") && !strstr(offline, "oifname != \"\""), "... nothing masqueraded, no empty interface name");
	_cleanup_free_ char *nft_path = NULL;
	if (geteuid() != 0 || find_program("nft", &nft_path) < 0) {
		tap_skip("nft -c accepts the table", "needs root and nft");
		tap_skip("nft -c accepts the offline table", "needs root and nft");
	} else {
		_cleanup_free_ char *file = write_tmp("table.nft", nft), *out = NULL;
		struct run_opts o = { .capture = &out, .capture_stderr = true };
		r = run_argv((char *[]){ "nft", "-c", "-f", file, NULL }, &o);
		if (!tap_ok(r == 0, "nft -c accepts the table"))
			tap_diag("%s", out ? out : "");
		_cleanup_free_ char *file2 = write_tmp("offline.nft", offline), *out2 = NULL;
		struct run_opts o2 = { .capture = &out2, .capture_stderr = true };
		r = run_argv((char *[]){ "nft", "-c", "-f", file2, NULL }, &o2);
		if (!tap_ok(r == 0, "nft -c accepts the offline table"))
			tap_diag("%s", out2 ? out2 : "");
	}
	sbx_config_free(&c);
	rm_rf(dir);
	return tap_done();
}
