/* ssh: this machine's own SSH host keys, made on its first boot (images ship none, so no two
 * machines share a key), and the sshd drop-in for the config's options.
 *
 * Ed25519 and ECDSA keys are made with `ssh-keygen -q -N "" -t TYPE -f PATH` through the runner
 * when missing; RSA only with "rsa": true (3072-bit RSA takes seconds on a small board).
 * "password_authentication" (bool) writes /etc/ssh/sshd_config.d/50-pmoves.conf. On the
 * running system sshd is reloaded after a change. The detail line lists the fingerprints
 * (public) of the host keys, as `ssh-keygen -l` shows them. */
#include "fb-config.h"
#include "fb-step.h"
#include "firstboot.h"
#include "hash.h"
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>

#define DROPIN "/etc/ssh/sshd_config.d/50-pmoves.conf"

static const char *const key_types[] = { "ed25519", "ecdsa", "rsa" };

/* "ssh": {"rsa": bool, "password_authentication": bool}, optional. */
static const struct fb_field ssh_fields[] = {
	{ "rsa", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "password_authentication", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field ssh_schema = { NULL, FB_T_OBJECT, ssh_fields, NULL, NULL, 0, 0 };

static bool want_type(json_object *section, const char *type)
{
	json_object *v;
	if (!STREQ(type, "rsa"))
		return true;
	return section && json_object_object_get_ex(section, "rsa", &v) && json_object_get_boolean(v);
}

static char *key_path(const char *type, bool pub)
{
	return fb_strdupf("/etc/ssh/ssh_host_%s_key%s", type, pub ? ".pub" : "");
}

/* 1: both files of TYPE's key are there, the public one a key line. */
static int key_present(const char *type)
{
	_cleanup_free_ char *priv = key_path(type, false), *pub = key_path(type, true), *text = NULL;
	if (!priv || !pub)
		return -ENOMEM;
	_cleanup_free_ char *key = NULL;
	/* The private key must be whole too: an empty file is what a power cut right after an
	 * unsynced ssh-keygen leaves behind. */
	int r = fb_read(priv, 64 * 1024, &key, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (strncmp(key, "-----BEGIN ", 11) != 0)
		return 0;
	r = fb_read(pub, 64 * 1024, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return strchr(text, ' ') != NULL && strchr(text, '\n') != NULL;
}

/* The drop-in's text, or NULL when the config sets nothing for it. */
static char *dropin_text(json_object *section)
{
	json_object *v;
	if (!section || !json_object_object_get_ex(section, "password_authentication", &v))
		return NULL;
	return fb_strdupf("# Written by pmoves-firstboot from its config: change the config, not this file.\n"
			  "PasswordAuthentication %s\n",
			  json_object_get_boolean(v) ? "yes" : "no");
}

static int ssh_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)ret_msg;
	for (size_t i = 0; i < ARRAY_SIZE(key_types); i++) {
		if (!want_type(section, key_types[i]))
			continue;
		int r = key_present(key_types[i]);
		if (r <= 0)
			return r;
	}
	_cleanup_free_ char *text = dropin_text(section);
	return text ? fb_file_is(DROPIN, text, strlen(text)) : 1;
}

/* "SHA256:..." of a public key line, as ssh-keygen -l prints it (unpadded base64). */
static char *fingerprint(const char *line)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *blob = strchr(line, ' ');
	if (!blob)
		return NULL;
	_cleanup_free_ char *text = strndup(blob + 1, strcspn(blob + 1, " \n"));
	_cleanup_free_ uint8_t *raw = NULL;
	size_t len;
	if (!text || fb_base64_decode(text, &raw, &len) < 0)
		return NULL;
	uint8_t d[32];
	if (sha256_of(raw, len, d) < 0)
		return NULL;
	char out[7 + 44 + 1] = "SHA256:";
	size_t n = 7;
	for (size_t i = 0; i < 32; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < 32 ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < 32 ? d[i + 2] : 0);
		size_t chars = i + 2 < 32 ? 4 : i + 1 < 32 ? 3 : 2;
		for (size_t k = 0; k < chars; k++)
			out[n++] = b64[(v >> (18 - 6 * k)) & 63];
	}
	out[n] = '\0';
	return strdup(out);
}

/* "ed25519 SHA256:..., ecdsa SHA256:..." for the keys present. */
static char *fingerprints(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	bool first = true;
	for (size_t i = 0; i < ARRAY_SIZE(key_types); i++) {
		_cleanup_free_ char *pub = key_path(key_types[i], true), *text = NULL, *fp = NULL;
		if (!pub || fb_read(pub, 64 * 1024, &text, NULL) < 0 || !(fp = fingerprint(text)))
			continue;
		fprintf(f, "%s%s %s", first ? "" : ", ", key_types[i], fp);
		first = false;
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static enum fb_result ssh_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	unsigned made = 0;
	bool changed = false;
	int r;
	/* /etc/ssh, made 0755 when missing (a tree without openssh-server). ssh-keygen writes
	 * the two files of a key by path: on a tree it gets this directory, opened inside the
	 * root, as /proc/self/fd/N (fb_fd_path), so a symlink in the tree (etc/ssh -> /elsewhere)
	 * cannot send the keys out of it; both names are removed first, so it follows none. */
	_cleanup_close_ int dfd = fb_open_dir("/etc/ssh", true);
	_cleanup_free_ char *dir = dfd < 0 ? NULL : fb_fd_path(dfd, "/etc/ssh", true);
	if (dfd < 0 || !dir) {
		r = dfd < 0 ? dfd : -ENOMEM;
		*ret_msg = fb_strdupf("cannot make '/etc/ssh' in the root: %s", strerror(-r));
		return FB_FAILED;
	}
	for (size_t i = 0; i < ARRAY_SIZE(key_types); i++) {
		const char *type = key_types[i];
		if (!want_type(section, type) || (r = key_present(type)) > 0)
			continue;
		_cleanup_free_ char *priv = key_path(type, false), *pub = key_path(type, true), *host_priv = NULL;
		if (!priv || !pub || !(host_priv = fb_strdupf("%s/%s", dir, strrchr(priv, '/') + 1)))
			return FB_FAILED;
		/* A half-made pair (a cut during ssh-keygen) is made again; ssh-keygen would ask
		 * before overwriting. */
		if ((r = fb_remove(priv)) < 0 || (r = fb_remove(pub)) < 0) {
			*ret_msg = fb_strdupf("cannot remove the incomplete host key '%s': %s", priv, strerror(-r));
			return FB_FAILED;
		}
		char *argv[] = { "ssh-keygen", "-q", "-N", "", "-t", (char *)type, "-f", host_priv, NULL };
		r = fb_run(argv);
		if (r != 0 || key_present(type) <= 0) {
			*ret_msg = r < 0 ? fb_strdupf("cannot run 'ssh-keygen': %s", strerror(-r))
				 : r ? fb_strdupf("'ssh-keygen -t %s' exited with %d", type, r)
				     : fb_strdupf("'ssh-keygen -t %s' made no key '%s'", type, priv);
			return FB_FAILED;
		}
		made++;
		changed = true;
	}
	_cleanup_free_ char *text = dropin_text(section);
	if (text && (r = fb_file_is(DROPIN, text, strlen(text))) == 0) {
		r = fb_write(DROPIN, text, strlen(text), 0644, 0, 0);
		changed = true;
	}
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot write '%s': %s", DROPIN, strerror(-r));
		return FB_FAILED;
	}
	if (changed && fb_live()) {
		/* Before sshd starts (the unit's ordering) this does nothing; later it reloads. */
		r = fb_systemctl_live("try-reload-or-restart", (char *[]){ "ssh.service", NULL });
		if (r != 0)
			fb_warn("cannot reload ssh.service: systemctl exited with %d, ignoring", r);
	}
	_cleanup_free_ char *fps = fingerprints();
	*ret_msg = fb_strdupf("%u host keys made%s%s", made, fps && *fps ? ": " : "", fps ? fps : "");
	return FB_OK;
}

const struct fb_step step_ssh = {
	.name = "ssh",
	.config_key = "ssh",
	.schema = &ssh_schema,
	.needs_config = false,
	.required = false,
	.check = ssh_check,
	.apply = ssh_apply,
};
