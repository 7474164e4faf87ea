/* The machine's sandbox config and a task's spec: JSON, every key checked, unknown keys refused. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <json-c/json.h>

#include "hash.h"
#include "log.h"
#include "sbx.h"
#include "util.h"

#define CONFIG_MAX (64u << 10)
#define SPEC_MAX (64u << 10)

static int parse(const char *path, size_t max, json_object **ret, char **ret_text, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = read_file(path, max, &buf, &len);
	if (r == -EFBIG) {
		log_error("%s: larger than %zu KiB", path, max >> 10);
		return -EINVAL;
	}
	if (r < 0)
		return log_errno(r, "%s", path);
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return log_errno(-ENOMEM, "%s", path);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (e != json_tokener_success || !o || end != len) {
		json_object_put(o);
		log_error("%s: not JSON: %s", path, e != json_tokener_success ? json_tokener_error_desc(e) : "text after the object");
		return -EINVAL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		log_error("%s: not a JSON object", path);
		return -EINVAL;
	}
	*ret = o;
	if (ret_text)
		*ret_text = TAKE_PTR(buf), *ret_len = len;
	return 0;
}

static int bad(const char *path, const char *key, const char *what)
{
	log_error("%s: '%s' %s", path, key, what);
	return -EINVAL;
}

static int get_string(const char *path, json_object *o, const char *key, bool absolute, char **ret)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	const char *s = json_object_get_string(v);
	if (!json_object_is_type(v, json_type_string) || str_has_control(s) || strlen(s) > 4000)
		return bad(path, key, "must be a string of printable characters");
	if (absolute && (s[0] != '/' || strstr(s, "/../") || str_has_space_or_control(s)))
		return bad(path, key, "must be an absolute path without '..' or spaces");
	char *c = strdup(s);
	if (!c)
		return -ENOMEM;
	free(*ret);
	*ret = c;
	return 0;
}

static int get_uint(const char *path, json_object *o, const char *key, uint64_t lo, uint64_t hi, uint64_t *ret)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	int64_t n = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || n < 0 || (uint64_t)n < lo || (uint64_t)n > hi) {
		char what[96];
		snprintf(what, sizeof(what), "must be a whole number from %" PRIu64 " to %" PRIu64, lo, hi);
		return bad(path, key, what);
	}
	*ret = (uint64_t)n;
	return 0;
}

static int unknown_keys(const char *path, json_object *o, const char *const *keys)
{
	json_object_object_foreach(o, k, v) {
		(void)v;
		bool known = false;
		for (size_t i = 0; keys[i]; i++)
			known |= STREQ(k, keys[i]);
		if (!known)
			return bad(path, k, "is not a key here");
	}
	return 0;
}

static int dup_default(char **p, const char *s)
{
	if (*p || !s)
		return 0;
	return (*p = strdup(s)) ? 0 : -ENOMEM;
}

/* "FIRST-LAST": ids no account has, above the 16-bit range where accounts live and below the
 * high half (2^31 and up, which systemd reserves); at most 65536 of them. "": none. */
static int check_uids(struct sbx_config *c, const char *where, const char *uids)
{
	if (!uids[0])
		return 0;
	const char *dash = strchr(uids, '-');
	_cleanup_free_ char *first = dash ? strndup(uids, (size_t)(dash - uids)) : NULL;
	uint64_t a, b;
	if (!dash || !first || parse_u64(first, &a) < 0 || parse_u64(dash + 1, &b) < 0 || a < 65536 || b < a ||
	    b > 2147483647 || b - a >= 65536)
		return bad(where, "uids", "must be \"FIRST-LAST\": at most 65536 ids from 65536 to 2147483647 (or \"\": "
					  "every VMM runs as the sandbox user)");
	c->uid_first = (uint32_t)a;
	c->uid_count = (uint32_t)(b - a + 1);
	return 0;
}

static int check(struct sbx_config *c, const char *where, char *subnet, const char *uids)
{
	if (!STREQ(c->accel, "auto") && !STREQ(c->accel, "kvm") && !STREQ(c->accel, "tcg"))
		return bad(where, "accel", "must be \"auto\", \"kvm\" or \"tcg\"");
	if (!STREQ(c->backend, "auto") && !sbx_backend_find(c->backend))
		return bad(where, "backend", "names no backend (auto, firecracker, qemu)");
	if (!valid_name(c->user, 32))
		return bad(where, "user", "must be a user name");
	if (check_uids(c, where, uids) < 0)
		return -EINVAL;
	/* Interface names: at most 15 bytes; the bridge's leaves room for nothing more. */
	const char *ifs[] = { c->bridge, c->uplink };
	for (size_t i = 0; i < ARRAY_SIZE(ifs); i++)
		if (ifs[i] && ifs[i][0] && (strlen(ifs[i]) > 15 || !valid_name(ifs[i], 15)))
			return bad(where, i ? "uplink" : "bridge", "must be an interface name (up to 15 of a-z 0-9 . _ -)");
	struct in_addr a;
	char *slash = strchr(subnet, '/');
	unsigned long prefix = slash ? strtoul(slash + 1, NULL, 10) : 0;
	if (slash)
		*slash = 0;
	if (!slash || prefix < 16 || prefix > 29 || inet_pton(AF_INET, subnet, &a) != 1 ||
	    (ntohl(a.s_addr) & ~(~0u << (32 - prefix))) != 0)
		return bad(where, "subnet", "must be an IPv4 network A.B.C.D/N with N from 16 to 29, host bits zero");
	c->net = ntohl(a.s_addr);
	c->prefix = (unsigned)prefix;
	if (c->dns && inet_pton(AF_INET, c->dns, &a) != 1)
		return bad(where, "dns", "must be an IPv4 address");
	return 0;
}

int sbx_config_load(const char *path, struct sbx_config *c)
{
	static const char *const keys[] = { "backend", "accel", "firecracker", "jailer", "kernel", "vmlinux", "initrd", "rootfs", "state_dir",
					    "audit_log", "user", "uids", "bridge", "subnet", "uplink", "dns", "output_max", "console_max", NULL };
	*c = (struct sbx_config){ .output_max = 1u << 20, .console_max = 4u << 20 };
	json_object *o = NULL;
	int r = 0;
	if (path) {
		r = parse(path, CONFIG_MAX, &o, NULL, NULL);
		if (r < 0)
			return r;
	}
	_cleanup_free_ char *subnet = NULL, *uids = NULL;
	uint64_t out = c->output_max, con = c->console_max;
	if (o && ((r = unknown_keys(path, o, keys)) < 0 || (r = get_string(path, o, "backend", false, &c->backend)) < 0 ||
		  (r = get_string(path, o, "accel", false, &c->accel)) < 0 ||
		  (r = get_string(path, o, "firecracker", true, &c->firecracker)) < 0 ||
		  (r = get_string(path, o, "jailer", true, &c->jailer)) < 0 ||
		  (r = get_string(path, o, "kernel", true, &c->kernel)) < 0 ||
		  (r = get_string(path, o, "vmlinux", true, &c->vmlinux)) < 0 ||
		  (r = get_string(path, o, "initrd", true, &c->initrd)) < 0 ||
		  (r = get_string(path, o, "rootfs", true, &c->rootfs)) < 0 ||
		  (r = get_string(path, o, "state_dir", true, &c->state_dir)) < 0 ||
		  (r = get_string(path, o, "audit_log", true, &c->audit_log)) < 0 ||
		  (r = get_string(path, o, "user", false, &c->user)) < 0 ||
		  (r = get_string(path, o, "uids", false, &uids)) < 0 ||
		  (r = get_string(path, o, "bridge", false, &c->bridge)) < 0 ||
		  (r = get_string(path, o, "subnet", false, &subnet)) < 0 ||
		  (r = get_string(path, o, "uplink", false, &c->uplink)) < 0 ||
		  (r = get_string(path, o, "dns", false, &c->dns)) < 0 ||
		  (r = get_uint(path, o, "output_max", 4096, 1u << 30, &out)) < 0 ||
		  (r = get_uint(path, o, "console_max", 65536, 1u << 30, &con)) < 0))
		goto out;
	c->output_max = out;
	c->console_max = con;
	if ((r = dup_default(&c->backend, "auto")) < 0 || (r = dup_default(&c->accel, "auto")) < 0 ||
	    (r = dup_default(&c->firecracker, "/usr/bin/firecracker")) < 0 ||
	    (r = dup_default(&c->jailer, "/usr/bin/jailer")) < 0 ||
	    (r = dup_default(&c->kernel, "/usr/lib/pmoves/sandbox/vmlinuz")) < 0 ||
	    (r = dup_default(&c->vmlinux, "/usr/lib/pmoves/sandbox/vmlinux")) < 0 ||
	    (r = dup_default(&c->initrd, "/usr/lib/pmoves/sandbox/initrd.img")) < 0 ||
	    (r = dup_default(&c->rootfs, "/usr/lib/pmoves/sandbox/rootfs.ext4")) < 0 ||
	    (r = dup_default(&c->state_dir, "/run/pmoves-sandbox")) < 0 ||
	    (r = dup_default(&c->audit_log, "/var/log/pmoves/sandbox/audit.log")) < 0 ||
	    (r = dup_default(&c->user, "pmoves-sandbox")) < 0 || (r = dup_default(&c->bridge, "sbx0")) < 0 ||
	    (r = dup_default(&subnet, "10.77.0.0/24")) < 0 || (r = dup_default(&uids, SBX_UIDS)) < 0)
		goto out;
	r = check(c, path ? path : "the built-in config", subnet, uids);
out:
	json_object_put(o);
	return r;
}

void sbx_config_free(struct sbx_config *c)
{
	char **all[] = { &c->backend, &c->accel, &c->firecracker, &c->jailer, &c->kernel, &c->vmlinux, &c->initrd, &c->rootfs, &c->state_dir,
			 &c->audit_log, &c->user, &c->bridge, &c->uplink, &c->dns };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		free(*all[i]);
		*all[i] = NULL;
	}
}

int sbx_spec_load(const char *path, struct sbx_spec *s)
{
	static const char *const keys[] = { "vcpus", "memory_mib", "ttl_s", "network", "command", NULL };
	*s = (struct sbx_spec){ .vcpus = 1, .memory_mib = 256, .ttl_s = 300, .network = true };
	json_object *o;
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = parse(path, SPEC_MAX, &o, &text, &len);
	if (r < 0)
		return r;
	uint64_t vcpus = s->vcpus, mem = s->memory_mib, ttl = s->ttl_s;
	size_t n = 0, bytes = 0;
	json_object *v;
	if ((r = unknown_keys(path, o, keys)) < 0 || (r = get_uint(path, o, "vcpus", 1, 32, &vcpus)) < 0 ||
	    (r = get_uint(path, o, "memory_mib", 64, 65536, &mem)) < 0 ||
	    (r = get_uint(path, o, "ttl_s", 1, 7 * 86400, &ttl)) < 0)
		goto out;
	s->vcpus = (unsigned)vcpus, s->memory_mib = (unsigned)mem, s->ttl_s = (unsigned)ttl;
	if (json_object_object_get_ex(o, "network", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			r = bad(path, "network", "must be true or false");
			goto out;
		}
		s->network = json_object_get_boolean(v);
	}
	/* The command goes to the guest as "arg=WORD\0" strings in one 64 KiB request. */
	if (json_object_object_get_ex(o, "command", &v) && json_object_is_type(v, json_type_array))
		n = json_object_array_length(v);
	if (n == 0 || n > 1000) {
		r = bad(path, "command", "must be a list of 1 to 1000 strings, the program first");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *w = json_object_array_get_idx(v, i);
		const char *word = json_object_get_string(w);
		size_t wl = json_object_get_string_len(w);
		bytes += wl + 5;
		if (!json_object_is_type(w, json_type_string) || strlen(word) != wl || (i == 0 && wl == 0) ||
		    bytes > 60000) {
			r = bad(path, "command", "must be strings without NUL bytes, a program first, 60000 bytes in all");
			goto out;
		}
		if ((r = strv_push(&s->command, word)) < 0)
			goto out;
	}
	r = sha256_hex_of(text, len, s->sha256);
out:
	json_object_put(o);
	if (r < 0)
		sbx_spec_free(s);
	return r;
}

void sbx_spec_free(struct sbx_spec *s)
{
	strv_free(s->command);
	s->command = NULL;
}
