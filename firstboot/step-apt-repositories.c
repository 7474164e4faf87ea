/* apt-repositories: vendor apt repositories, their signing key pinned by fingerprint.
 *
 * Each {name, url, suite, components, key_url, key_fingerprint, packages}: the key is fetched
 * (libcurl), `gpg --show-keys --with-colons` on the downloaded file must show exactly one
 * primary key, neither revoked nor expired, whose fingerprint is the pinned one; then the key
 * (dearmored to a binary keyring) goes to /etc/apt/keyrings/NAME.gpg and the source to
 * /etc/apt/sources.list.d/NAME.list with signed-by. gpg must be in the image (Debian 'gpg').
 * The "packages" of the repositories that are not installed yet are installed (apt-get update,
 * then install) once the boot is done. Key server unreachable: pending. Wrong key: failed,
 * nothing written, both fingerprints named. */
#include "fb-fetch.h"
#include "fb-step.h"
#include "firstboot.h"
#include "download.h"
#include "util.h"

#include <ctype.h>
#include <sys/stat.h>

#define KEYRINGS "/etc/apt/keyrings"
#define SOURCES "/etc/apt/sources.list.d"
#define KEY_MAX (1u << 20)

static const struct fb_format fmt_suite = {
	.name = "apt_suite",
	.message = "'%s' is not an apt suite ('bookworm', 'stable', or a flat repository's 'path/')",
	.pattern = "^[A-Za-z0-9._][A-Za-z0-9._/-]*$",
	.forbid = "\\.\\.",
	.max = 64,
};

static const struct fb_format fmt_component = {
	.name = "apt_component",
	.message = "'%s' is not an apt component ('main')",
	.pattern = "^[A-Za-z0-9._][A-Za-z0-9._-]*$",
	.max = 64,
};

static bool fingerprint_norm(const char *s, char ret[41])
{
	size_t n = 0;
	for (; *s; s++) {
		if (*s == ' ')
			continue;
		if (n == 40 || !strchr("0123456789abcdefABCDEF", *s))
			return false;
		ret[n++] = (char)(*s >= 'a' && *s <= 'f' ? *s - 'a' + 'A' : *s);
	}
	ret[n] = '\0';
	return n == 40;
}

/* 40 hex digits, blanks anywhere (as gpg prints them); fingerprint_norm() reads it. */
static const struct fb_format fmt_fingerprint = {
	.name = "openpgp_fingerprint",
	.message = "'%s' is not an OpenPGP fingerprint (40 hex digits, as 'gpg --show-keys' prints)",
	.pattern = "^ *([0-9A-Fa-f] *){40}$",
};

static int valid_repo(struct fb_check *c, json_object *v)
{
	const char *suite = json_object_get_string(json_object_object_get(v, "suite"));
	json_object *comps;
	bool flat = suite && suite[strlen(suite) - 1] == '/';
	bool has = json_object_object_get_ex(v, "components", &comps) && json_object_array_length(comps) > 0;
	if (flat && has)
		return fb_bad(c, "a flat repository (suite ending in '/') takes no components");
	if (!flat && !has)
		return fb_bad(c, "'components' is required (such as [\"main\"])");
	return 0;
}

static int valid_repos(struct fb_check *c, json_object *v)
{
	long i = fb_find_duplicate(v, "name", NULL);
	if (i >= 0)
		return fb_bad(c, "apt repository '%s' is listed twice", fb_json_str(json_object_array_get_idx(v, (size_t)i), "name", "?"));
	return 0;
}

/* A Debian package name (Policy 5.6.1): lowercase letters, digits, '+', '-', '.'; at least two
 * characters, starting with a letter or digit. */
static const struct fb_format fmt_package = {
	.name = "debian_package",
	.message = "'%s' is not a Debian package name ('tailscale')",
	.pattern = "^[a-z0-9][a-z0-9+.-]+$",
	.max = 128,
};

/* A repository's URL goes into sources.list, which every user may read: a user:password there
 * would be anyone's. apt takes credentials from /etc/apt/auth.conf.d (0600). */
static int valid_repo_url(struct fb_check *c, json_object *v)
{
	int r = fb_valid_download_url(c, v);
	if (r == 0 && url_has_userinfo(json_object_get_string(v)))
		return fb_bad(c, "'%s' has a user:password, which would be in the world-readable sources.list: "
				 "give it to apt in a file under /etc/apt/auth.conf.d (mode 0600) with the files section",
			      FB_SHOW(json_object_get_string(v)));
	return r;
}

static const struct fb_field component_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_component, 0, 0 };
static const struct fb_field package_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_package, 0, 0 };
static const struct fb_field repo_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fb_fmt_artifact_name, FB_REQUIRED, 0 },
	{ "url", FB_T_STRING, NULL, valid_repo_url, NULL, FB_REQUIRED, 2048 },
	{ "suite", FB_T_STRING, NULL, NULL, &fmt_suite, FB_REQUIRED, 0 },
	{ "components", FB_T_ARRAY, &component_elem, NULL, NULL, 0, 16 },
	{ "key_url", FB_T_STRING, NULL, fb_valid_download_url, NULL, FB_REQUIRED, 2048 },
	{ "key_fingerprint", FB_T_STRING, NULL, NULL, &fmt_fingerprint, FB_REQUIRED, 0 },
	{ "packages", FB_T_ARRAY, &package_elem, NULL, NULL, 0, 32 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field repo_elem = { NULL, FB_T_OBJECT, repo_fields, valid_repo, NULL, 0, 0 };
static const struct fb_field repos_schema = { NULL, FB_T_ARRAY, &repo_elem, valid_repos, NULL, 0, 64 };

struct repo {
	const char *name, *url, *key_url;
	char fingerprint[41];
	char *keyring, *list, *line;
};

static void repo_done(struct repo *r)
{
	free(r->keyring);
	free(r->list);
	free(r->line);
}

static int repo_from(json_object *o, struct repo *ret)
{
	struct repo r = { .name = fb_json_str(o, "name", NULL), .url = fb_json_str(o, "url", NULL), .key_url = fb_json_str(o, "key_url", NULL) };
	if (!fingerprint_norm(fb_json_str(o, "key_fingerprint", NULL), r.fingerprint))
		return -EINVAL;
	r.keyring = fb_strdupf("%s/%s.gpg", KEYRINGS, r.name);
	r.list = fb_strdupf("%s/%s.list", SOURCES, r.name);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f) {
		json_object *comps = json_object_object_get(o, "components");
		fprintf(f, "# Written by pmoves-firstboot (apt-repositories step): change its config, not this file.\n");
		fprintf(f, "deb [signed-by=%s] %s %s", r.keyring, r.url, fb_json_str(o, "suite", NULL));
		for (size_t i = 0; comps && i < json_object_array_length(comps); i++)
			fprintf(f, " %s", json_object_get_string(json_object_array_get_idx(comps, i)));
		fputc('\n', f);
		if (fclose(f) != 0) {
			free(buf);
			buf = NULL;
		}
	}
	r.line = buf;
	if (!r.keyring || !r.list || !r.line) {
		repo_done(&r);
		return -ENOMEM;
	}
	*ret = r;
	return 0;
}

/* The "packages" of every repository that dpkg does not list as installed, in order. */
static int repos_missing(json_object *section, char ***ret)
{
	_cleanup_strv_ char **installed = NULL, **missing = NULL;
	int k = fb_installed_packages(&installed);
	if (k < 0)
		return k;
	for (size_t i = 0; i < json_object_array_length(section); i++) {
		json_object *pkgs = json_object_object_get(json_object_array_get_idx(section, i), "packages");
		for (size_t j = 0; pkgs && j < json_object_array_length(pkgs); j++) {
			const char *p = json_object_get_string(json_object_array_get_idx(pkgs, j));
			if (!strv_contains(installed, p) && !strv_contains(missing, p) && (k = strv_push(&missing, p)) < 0)
				return k;
		}
	}
	*ret = TAKE_PTR(missing);
	return 0;
}

static int repos_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	for (size_t i = 0; i < json_object_array_length(section); i++) {
		_cleanup_(repo_done) struct repo r = { 0 };
		int k = repo_from(json_object_array_get_idx(section, i), &r);
		if (k < 0)
			return k;
		if ((k = fb_exists(r.keyring)) <= 0 || (k = fb_file_is(r.list, r.line, strlen(r.line))) <= 0)
			return k;
	}
	_cleanup_strv_ char **missing = NULL;
	int k = repos_missing(section, &missing);
	if (k < 0) {
		*ret_msg = fb_strdupf("cannot read dpkg's status: %s", strerror(-k));
		return k;
	}
	return missing ? 0 : 1;
}

/* The primary keys in gpg's colon listing: how many, and whether one is FP, usable. */
static int key_matches(const char *listing, const char *fp, char **ret_msg, const char *name)
{
	size_t pubs = 0;
	bool after_pub = false, found = false;
	char validity = 0;
	_cleanup_free_ char *seen = NULL;
	for (const char *line = listing; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len > 4 && !strncmp(line, "pub:", 4)) {
			pubs++;
			after_pub = true;
			validity = line[4];
		} else if (len > 4 && !strncmp(line, "fpr:", 4) && after_pub) {
			after_pub = false;
			/* fpr:::::::::FINGERPRINT: the tenth field */
			const char *p = line;
			for (int f = 0; f < 9 && p; f++) {
				p = memchr(p, ':', len - (size_t)(p - line));
				p = p ? p + 1 : NULL;
			}
			if (p && (size_t)(line + len - p) >= 40) {
				if (!seen)
					seen = strndup(p, 40);
				if (!strncmp(p, fp, 40) && p[40] == ':')
					found = true;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	if (pubs != 1) {
		*ret_msg = fb_strdupf("apt repository '%s': the key file holds %zu keys, not the one pinned (%s): nothing written",
				      name, pubs, fp);
		return -EBADMSG;
	}
	if (!found) {
		*ret_msg = fb_strdupf("apt repository '%s': the key's fingerprint is %s, but %s is pinned: nothing written", name,
				      seen ? seen : "(none)", fp);
		return -EBADMSG;
	}
	if (validity == 'r' || validity == 'e') {
		*ret_msg = fb_strdupf("apt repository '%s': the key %s is %s: nothing written", name, fp,
				      validity == 'r' ? "revoked" : "expired");
		return -EKEYREVOKED;
	}
	return 0;
}

/* The fetched key checked by gpg in a scratch home, and as a binary keyring. */
static int key_verify(const struct repo *r, const char *key, size_t len, char **ret_keyring, size_t *ret_len,
		      char **ret_msg)
{
	char tmpl[] = "/tmp/pmoves-firstboot-gpg-XXXXXX";
	if (!mkdtemp(tmpl))
		return -errno;
	_cleanup_free_ char *home = fb_strdupf("%s/home", tmpl), *file = fb_strdupf("%s/key", tmpl),
			    *out = fb_strdupf("%s/key.gpg", tmpl), *listing = NULL;
	int k = home && file && out ? 0 : -ENOMEM;
	if (k == 0 && (mkdir(home, 0700) < 0))
		k = -errno;
	if (k == 0)
		k = write_file_atomic(file, key, len, 0600);
	if (k == 0) {
		char *argv[] = { "gpg", "--batch", "--no-tty", "--homedir", home, "--show-keys", "--with-colons", file, NULL };
		int st = fb_run_capture(argv, &listing);
		if (st != 0) {
			_cleanup_free_ char *shown = fb_url_shown(r->key_url);
			*ret_msg = fb_strdupf("apt repository '%s': 'gpg --show-keys' cannot read the key from '%s' (exit status %d; is gpg installed?)",
					      r->name, shown ? shown : "?", st);
			k = -EIO;
		}
	}
	if (k == 0)
		k = key_matches(listing ? listing : "", r->fingerprint, ret_msg, r->name);
	const char *p = key;
	while (k == 0 && p < key + len && strchr(" \t\r\n", *p))
		p++;
	bool armored = (size_t)(key + len - p) > 10 && !strncmp(p, "-----BEGIN", 10);
	char *ring = NULL;
	size_t ring_len = 0;
	if (k == 0 && armored) {
		char *argv[] = { "gpg", "--batch", "--no-tty", "--homedir", home, "--output", out, "--dearmor", file, NULL };
		int st = fb_run(argv);
		if (st != 0 || (k = read_file(out, KEY_MAX, &ring, &ring_len)) < 0) {
			*ret_msg = fb_strdupf("apt repository '%s': 'gpg --dearmor' failed (exit status %d)", r->name, st);
			k = k < 0 ? k : -EIO;
		}
	} else if (k == 0) {
		ring = malloc(len ? len : 1);
		if (!ring)
			k = -ENOMEM;
		else
			memcpy(ring, key, len), ring_len = len;
	}
	rm_rf(tmpl);
	if (k < 0) {
		free(ring);
		return k;
	}
	*ret_keyring = ring;
	*ret_len = ring_len;
	return 0;
}

static enum fb_result repos_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	size_t n = json_object_array_length(section), written = 0;
	for (size_t i = 0; i < n; i++) {
		_cleanup_(repo_done) struct repo r = { 0 };
		if (repo_from(json_object_array_get_idx(section, i), &r) < 0)
			return FB_FAILED;
		if (fb_exists(r.keyring) == 1 && fb_file_is(r.list, r.line, strlen(r.line)) == 1)
			continue;
		if (fb_dry_run()) {
			_cleanup_free_ char *shown = fb_url_shown(r.key_url); /* without user:password and query */
			fb_would("fetch %s and write it to %s if its fingerprint is %s", shown ? shown : "?", r.keyring,
				 r.fingerprint);
			fb_write(r.list, r.line, strlen(r.line), 0644, 0, 0);
			written++;
			continue;
		}
		_cleanup_free_ char *key = NULL, *err = NULL, *ring = NULL;
		size_t len = 0, ring_len = 0;
		int k = fb_fetch(r.key_url, KEY_MAX, &key, &len, &err);
		if (k < 0) {
			*ret_msg = fb_strdupf("apt repository '%s': %s%s", r.name, err ? err : strerror(-k),
					      k == -EFBIG ? "" : ": trying again on a later run");
			return k == -EFBIG ? FB_FAILED : FB_PENDING;
		}
		if (key_verify(&r, key, len, &ring, &ring_len, ret_msg) < 0) {
			if (!*ret_msg)
				*ret_msg = fb_strdupf("apt repository '%s': cannot check the key", r.name);
			return FB_FAILED;
		}
		/* The key first: a list naming a missing keyring would break apt-get update. */
		if ((k = fb_write(r.keyring, ring, ring_len, 0644, 0, 0)) < 0 ||
		    (k = fb_write(r.list, r.line, strlen(r.line), 0644, 0, 0)) < 0) {
			*ret_msg = fb_strdupf("apt repository '%s': cannot write its files: %s", r.name, strerror(-k));
			return FB_FAILED;
		}
		written++;
	}
	/* The packages the config wants from them: apt-get update, then install what is missing.
	 * The boot's own run comes before the network: they wait for the timer's run. */
	_cleanup_strv_ char **missing = NULL;
	int k = repos_missing(section, &missing);
	if (k < 0) {
		*ret_msg = fb_strdupf("cannot read dpkg's status: %s", strerror(-k));
		return FB_FAILED;
	}
	_cleanup_free_ char *list = missing ? strv_join(missing, " ") : NULL;
	if (missing && !list)
		return FB_FAILED;
	if (missing && fb_system_booting()) {
		*ret_msg = fb_strdupf("%zu of %zu apt repositories added (key fingerprints verified); %s installed once the boot "
				      "is done (network)",
				      written, n, list);
		return FB_PENDING;
	}
	if (missing) {
		if (fb_dpkg_finish(ret_msg) < 0)
			return FB_FAILED;
		if ((k = fb_apt("update", NULL)) != 0) {
			*ret_msg = fb_strdupf("'apt-get update' exited with %d (no network?): %s installed on a later run", k, list);
			return FB_PENDING;
		}
		if ((k = fb_apt("install", missing)) != 0) {
			*ret_msg = fb_strdupf("'apt-get install %s' exited with %d", list, k);
			return FB_FAILED;
		}
	}
	*ret_msg = fb_strdupf("%zu of %zu apt repositories added (key fingerprints verified)%s%s", written, n,
			      missing ? "; installed " : "", missing ? list : "");
	return FB_OK;
}

const struct fb_step step_apt_repositories = {
	.name = "apt-repositories",
	.config_key = "apt_repositories",
	.schema = &repos_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = repos_check,
	.apply = repos_apply,
};
