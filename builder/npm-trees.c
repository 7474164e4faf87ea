/* rootfs.npm (npm-trees.h). */
#include "npm-trees.h"
#include "hash.h"
#include "log.h"
#include "profile.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define NPM_FILE_MAX (8u << 20) /* package-lock.json of a few thousand packages */
#define NPM_NAME_MAX 214        /* npm's own limit on a package name */
#define PREFIX_MAX 200
#define SOURCE_BUILDS_MAX 8
#define DEPS_MAX 64

static const char *str(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

/* A package name as npm allows it: "name" or "@scope/name", lowercase, URL-safe. */
static bool valid_package(const char *s)
{
	if (!s || !*s || strlen(s) > NPM_NAME_MAX || *s == '.' || *s == '_')
		return false;
	const char *name = s;
	if (*s == '@') {
		const char *slash = strchr(s, '/');
		if (!slash || slash == s + 1 || strchr(slash + 1, '/'))
			return false;
		name = slash + 1;
	}
	if (!*name || *name == '.' || *name == '_')
		return false;
	for (const char *c = s + (*s == '@'); *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr("-._~", *c) || (*c == '/' && *s == '@')))
			return false;
	return true;
}

/* An exact version ("5.3.28", "0.12.0-beta.5"): a range would let npm ci refuse the
 * lockfile, and is not a pin. */
static bool valid_version(const char *s)
{
	if (!s || !*s || strlen(s) > 64 || !(*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || strchr(".-+", *s)))
			return false;
	return true;
}

/* An absolute path made of plain components, none of them "." or "..", that no system
 * directory is: npm writes the tree there, as root. */
static bool valid_prefix(const char *s)
{
	static const char *const refused[] = { "/usr", "/usr/lib", "/usr/local", "/usr/share", "/opt", "/srv", "/var",
					       "/var/lib", "/home", "/etc", "/root", "/tmp", "/boot", NULL };
	/* Not under these either: they are links out of the tree (/var/run -> /run) or mounts
	 * while mmdebstrap runs its hooks. */
	static const char *const under[] = { "/run", "/var/run", "/var/lock", "/proc", "/sys", "/dev", "/tmp", NULL };
	if (!s || s[0] != '/' || strlen(s) > PREFIX_MAX || s[strlen(s) - 1] == '/')
		return false;
	for (size_t i = 0; refused[i]; i++)
		if (STREQ(s, refused[i]))
			return false;
	for (size_t i = 0; under[i]; i++)
		if (!strncmp(s, under[i], strlen(under[i])) && (s[strlen(under[i])] == '/' || !s[strlen(under[i])]))
			return false;
	for (const char *c = s; *c;) {
		c++; /* the slash */
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= 'A' && c[i] <= 'Z') || (c[i] >= '0' && c[i] <= '9') ||
			      strchr("._-", c[i])))
				return false;
		c += n;
	}
	return true;
}

static bool has_package(const struct profile *p, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; p->rootfs.packages && p->rootfs.packages[i]; i++)
		if (!strncmp(p->rootfs.packages[i], name, n) && (!p->rootfs.packages[i][n] || p->rootfs.packages[i][n] == '='))
			return true;
	return false;
}

/* ---- a tree's two files ---- */

struct tree {
	const char *name, *prefix;
	json_object *build;           /* build_from_source, or NULL */
	char *pkg_path, *lock_path;   /* in npm_dir() */
	char *pkg_text, *lock_text;
	size_t pkg_len, lock_len;
	json_object *pkg, *lock;
};

static void tree_done(struct tree *t)
{
	free(t->pkg_path);
	free(t->lock_path);
	free(t->pkg_text);
	free(t->lock_text);
	json_object_put(t->pkg);
	json_object_put(t->lock);
}

static int read_json(const char *path, char **ret_text, size_t *ret_len, json_object **ret)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	int r = read_file(path, NPM_FILE_MAX, ret_text, ret_len);
	if (r < 0)
		return r;
	if (strlen(*ret_text) != *ret_len)
		return -EBADMSG;
	*ret = json_tokener_parse(*ret_text);
	return json_object_is_type(*ret, json_type_object) ? 0 : -EBADMSG;
}

/* Entry I of rootfs.npm, its files read and parsed: 0, or -errno with *RET_FILE the file that
 * could not be read (-EINVAL: not a regular file, -EBADMSG: not a JSON object). */
static int tree_read(const struct profile *p, size_t i, struct tree *t, const char **ret_file)
{
	json_object *e = json_object_array_get_idx(json_object_object_get(p->rootfs.json, "npm"), i);
	t->name = str(e, "name");
	t->prefix = str(e, "prefix");
	t->build = json_object_object_get(e, "build_from_source");
	*ret_file = NULL;
	if (!valid_name(t->name, 64))
		return -EINVAL;
	if (asprintf(&t->pkg_path, "%s/%s/package.json", npm_dir(), t->name) < 0 ||
	    asprintf(&t->lock_path, "%s/%s/package-lock.json", npm_dir(), t->name) < 0)
		return -ENOMEM;
	*ret_file = t->pkg_path;
	int r = read_json(t->pkg_path, &t->pkg_text, &t->pkg_len, &t->pkg);
	if (r < 0)
		return r;
	*ret_file = t->lock_path;
	return read_json(t->lock_path, &t->lock_text, &t->lock_len, &t->lock);
}

static const char *read_error(int r)
{
	return r == -EBADMSG ? "not a JSON object" : r == -EINVAL ? "not a regular file" : strerror(-r);
}

/* tree_read(), its problems reported. */
static int tree_load(const struct profile *p, size_t i, struct problems *pr, struct tree *t)
{
	char at[64];
#define AT(k) (snprintf(at, sizeof(at), ".rootfs.npm[%zu]%s", i, k), at)
	const char *file;
	int r = tree_read(p, i, t, &file);
	if (r == -ENOMEM)
		return r;
	if (r < 0 && !file)
		return problem(pr, AT(".name"), "%s is not a directory name under '%s' (letters, digits, '.', '_', '-')",
			       Q(t->name ? t->name : ""), npm_dir());
	if (r < 0)
		return problem(pr, AT(".name"), "'%s': %s%s", file, read_error(r),
			       file == t->lock_path ? " (make it with `npm install --package-lock-only` and commit it)" : "");
	if (!valid_prefix(t->prefix))
		return problem(pr, AT(".prefix"),
			       "%s is not a directory for the tree (an absolute path of letters, digits, '.', '_', '-' "
			       "components, at most %d bytes, and not a system directory such as /usr or /opt itself)",
			       Q(t->prefix ? t->prefix : ""), PREFIX_MAX);
	return 0;
#undef AT
}

/* The lockfile's entry for package NAME installed at the top of the tree, or NULL. */
static json_object *locked(const struct tree *t, const char *name)
{
	json_object *pkgs = json_object_object_get(t->lock, "packages");
	char key[NPM_NAME_MAX + 16];
	snprintf(key, sizeof(key), "node_modules/%s", name);
	json_object *e = json_object_object_get(pkgs, key);
	return json_object_is_type(e, json_type_object) ? e : NULL;
}

static int tree_check(const struct profile *p, size_t i, struct problems *pr, const struct tree *t)
{
	char at[64];
#define AT(k) (snprintf(at, sizeof(at), ".rootfs.npm[%zu]%s", i, k), at)
	json_object *v = json_object_object_get(t->lock, "lockfileVersion");
	if (!json_object_is_type(v, json_type_int) || json_object_get_int(v) < 2 ||
	    !json_object_is_type(json_object_object_get(t->lock, "packages"), json_type_object))
		return problem(pr, AT(".name"), "'%s' is not a lockfile of npm 7 or later (lockfileVersion 2 or 3, with "
						"\"packages\"): bookworm's npm 9 reads those", t->lock_path);
	json_object *deps = json_object_object_get(t->pkg, "dependencies");
	if (!json_object_is_type(deps, json_type_object) || json_object_object_length(deps) == 0 ||
	    json_object_object_length(deps) > DEPS_MAX)
		return problem(pr, AT(".name"), "'%s' has no \"dependencies\" (or more than %d): nothing to install",
			       t->pkg_path, DEPS_MAX);
	json_object_object_foreach(deps, name, want)
	{
		const char *ver = json_object_get_string(want);
		if (!valid_package(name) || !json_object_is_type(want, json_type_string) || !valid_version(ver))
			return problem(pr, AT(".name"),
				       "'%s': dependency %s %s is not pinned: give the exact version (\"5.3.28\"), "
				       "not a range",
				       t->pkg_path, Q(name), Q(json_object_get_string(want)));
		json_object *e = locked(t, name);
		const char *integrity = str(e, "integrity");
		if (!e || !STREQ(str(e, "version") ? str(e, "version") : "", ver))
			return problem(pr, AT(".name"), "'%s' does not lock %s at %s: run `npm install --package-lock-only` in '%s/%s'",
				       t->lock_path, Q(name), ver, npm_dir(), t->name);
		if (!integrity || !str_starts_with(integrity, "sha512-"))
			return problem(pr, AT(".name"), "'%s': %s has no sha512 integrity hash", t->lock_path, Q(name));
	}
	size_t nb = t->build ? json_object_array_length(t->build) : 0;
	if (nb > SOURCE_BUILDS_MAX)
		return problem(pr, AT(".build_from_source"), "%zu packages: at most %d", nb, SOURCE_BUILDS_MAX);
	for (size_t j = 0; j < nb; j++) {
		const char *mod = json_object_get_string(json_object_array_get_idx(t->build, j));
		char at2[80];
		snprintf(at2, sizeof(at2), ".rootfs.npm[%zu].build_from_source[%zu]", i, j);
		if (!valid_package(mod))
			return problem(pr, at2, "%s is not an npm package name", Q(mod));
		if (!locked(t, mod))
			return problem(pr, at2, "%s is not in '%s' at the top of the tree (node_modules/%s)", Q(mod),
				       t->lock_path, mod);
	}
	if (nb && !has_package(p, "build-essential"))
		return problem(pr, AT(".build_from_source"),
			       "building a native module needs a compiler in the image: add \"build-essential\" to "
			       "rootfs.packages (node-gyp and Node's headers come with npm)");
	return 0;
#undef AT
}

int npm_trees_check(const struct profile *p, struct problems *pr)
{
	json_object *a = json_object_object_get(p->rootfs.json, "npm");
	if (!a)
		return 0;
	size_t n = json_object_array_length(a);
	if (n > NPM_TREES_MAX)
		return problem(pr, ".rootfs.npm", "%zu trees: at most %d", n, NPM_TREES_MAX);
	if (n && !has_package(p, "npm"))
		return problem(pr, ".rootfs.npm",
			       "the image's own npm installs these: add \"npm\" (and \"nodejs\") to rootfs.packages");
	if (n && (STREQ(p->rootfs.variant, "extract") || STREQ(p->rootfs.variant, "custom")))
		return problem(pr, ".rootfs.npm", "is not used with the variant \"%s\" (mmdebstrap runs no customize "
						  "hook in it)", p->rootfs.variant);
	for (size_t i = 0; i < n; i++) {
		struct tree t = { 0 };
		int r = tree_load(p, i, pr, &t);
		if (r == 0)
			r = tree_check(p, i, pr, &t);
		for (size_t j = 0; r == 0 && j < i; j++) {
			json_object *o = json_object_array_get_idx(a, j);
			const char *other = str(o, "prefix");
			size_t lo = strlen(other), lt = strlen(t.prefix);
			if (!strncmp(other, t.prefix, lo < lt ? lo : lt) &&
			    (lo == lt || (lo < lt ? t.prefix[lo] : other[lt]) == '/')) {
				char at[64];
				snprintf(at, sizeof(at), ".rootfs.npm[%zu].prefix", i);
				r = problem(pr, at, "'%s' overlaps rootfs.npm[%zu]'s '%s'", t.prefix, j, other);
			}
		}
		tree_done(&t);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Tree I loaded for the build (the profile was checked). */
static int tree_get(const struct profile *p, size_t i, struct tree *t)
{
	const char *file;
	int r = tree_read(p, i, t, &file);
	if (r < 0)
		log_error("%s: rootfs.npm[%zu]: '%s': %s", p->path, i, file ? file : npm_dir(), read_error(r));
	return r;
}

char *npm_trees_key(const struct profile *p)
{
	json_object *a = json_object_object_get(p->rootfs.json, "npm");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	int r = 0;
	for (size_t i = 0; r == 0 && a && i < json_object_array_length(a); i++) {
		struct tree t = { 0 };
		char h1[65], h2[65];
		if ((r = tree_get(p, i, &t)) == 0 && (r = sha256_hex_of(t.pkg_text, t.pkg_len, h1)) == 0 &&
		    (r = sha256_hex_of(t.lock_text, t.lock_len, h2)) == 0)
			fprintf(f, "npm %s %s %s %s\n", t.name, t.prefix, h1, h2);
		tree_done(&t);
	}
	if (fclose(f) != 0 || r < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int copy_to(const char *from, const char *text, size_t len, const char *dir, const char *name)
{
	_cleanup_free_ char *to = NULL;
	if (asprintf(&to, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	int r = write_file_atomic(to, text, len, 0644);
	if (r < 0)
		return log_errno(r, "cannot copy '%s' to '%s'", from, to);
	return 0;
}

int npm_trees_prepare(const struct profile *p, const char *dir, char **ret_env, char **ret_dir)
{
	json_object *a = json_object_object_get(p->rootfs.json, "npm");
	*ret_env = *ret_dir = NULL;
	if (!a || json_object_array_length(a) == 0)
		return 0;
	_cleanup_free_ char *top = NULL, *env = NULL, *envdir = NULL;
	if (asprintf(&top, "%s/npm", dir) < 0 || asprintf(&envdir, "PMOVES_NPM_DIR=%s", top) < 0)
		return -ENOMEM;
	if (mkdir(top, 0755) < 0)
		return log_errno(-errno, "cannot create '%s'", top);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	fputs("PMOVES_NPM=", f);
	int r = 0;
	for (size_t i = 0; r == 0 && i < json_object_array_length(a); i++) {
		struct tree t = { 0 };
		_cleanup_free_ char *sub = NULL;
		if ((r = tree_get(p, i, &t)) == 0 && (r = asprintf(&sub, "%s/%zu", top, i) < 0 ? -ENOMEM : 0) == 0 &&
		    (r = mkdir(sub, 0755) < 0 ? log_errno(-errno, "cannot create '%s'", sub) : 0) == 0 &&
		    (r = copy_to(t.pkg_path, t.pkg_text, t.pkg_len, sub, "package.json")) == 0 &&
		    (r = copy_to(t.lock_path, t.lock_text, t.lock_len, sub, "package-lock.json")) == 0) {
			fprintf(f, "%s%zu:%s:", i ? " " : "", i, t.prefix);
			for (size_t j = 0; t.build && j < json_object_array_length(t.build); j++)
				fprintf(f, "%s%s", j ? "," : "", json_object_get_string(json_object_array_get_idx(t.build, j)));
			log_info("rootfs: npm tree '%s' into %s (npm ci with '%s')", t.name, t.prefix, t.lock_path);
		}
		tree_done(&t);
	}
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	env = buf;
	if (r < 0)
		return r;
	*ret_env = TAKE_PTR(env);
	*ret_dir = TAKE_PTR(envdir);
	return 0;
}

/* For each tree: its files into PREFIX, `npm ci` there by the image's npm (a throwaway HOME and
 * cache, so nothing of npm's is left in the image), then each native module named by
 * build_from_source built again by node-gyp against the image's Node headers, its bundled
 * prebuilt binaries removed so the one built here is what loads. npm trusts, for the
 * build, the certificates the build host trusts ($NODE_EXTRA_CA_CERTS, else the host's
 * bundle): the same network the host's own tools reach the registry through. */
const char *const npm_trees_hook =
	"--customize-hook=h=/tmp/pmoves-npm; mkdir -p \"$1$h\" || exit 1; x=; "
	"ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}; "
	"if [ -r \"$ca\" ]; then cp \"$ca\" \"$1$h/host-ca.crt\" && x=NODE_EXTRA_CA_CERTS=$h/host-ca.crt || exit 1; fi; "
	"for t in $PMOVES_NPM; do i=${t%%:*}; r=${t#*:}; p=${r%%:*}; s=${r#*:}; "
	/* A link in the tree on the way (an absolute one resolves on the host here) is refused. */
	"case $(realpath -m \"$1$p\") in \"$(realpath \"$1\")$p\") ;; *) echo \"E: pmoves-image: rootfs.npm[$i]: "
	"$p leads through a symbolic link in the image\" >&2; exit 1;; esac; "
	"mkdir -p \"$1$p\" && cp \"$PMOVES_NPM_DIR/$i/package.json\" \"$PMOVES_NPM_DIR/$i/package-lock.json\" \"$1$p/\" && "
	"chroot \"$1\" env HOME=$h $x npm ci --prefix \"$p\" --omit=dev --no-audit --no-fund --no-update-notifier "
	"--foreground-scripts || { echo \"E: pmoves-image: rootfs.npm[$i]: npm ci in $p failed\" >&2; exit 1; }; "
	"for m in $(echo \"$s\" | tr , ' '); do chroot \"$1\" env HOME=$h sh -c "
	"'cd \"$0\" && rm -rf prebuilds build && node-gyp rebuild' \"$p/node_modules/$m\" || "
	"{ echo \"E: pmoves-image: rootfs.npm[$i]: node-gyp cannot build $m for the image's Node\" >&2; exit 1; }; done; "
	"done; rm -rf \"$1$h\"";

json_object *npm_trees_manifest(const struct profile *p)
{
	json_object *a = json_object_object_get(p->rootfs.json, "npm");
	if (!a || json_object_array_length(a) == 0)
		return NULL;
	json_object *out = json_object_new_array();
	for (size_t i = 0; out && i < json_object_array_length(a); i++) {
		struct tree t = { 0 };
		char h[65];
		json_object *o = json_object_new_object(), *deps = json_object_new_array();
		if (tree_get(p, i, &t) < 0 || !o || !deps || sha256_hex_of(t.lock_text, t.lock_len, h) < 0) {
			json_object_put(o);
			json_object_put(deps);
			json_object_put(out);
			tree_done(&t);
			return NULL;
		}
		json_object_object_add(o, "name", json_object_new_string(t.name));
		json_object_object_add(o, "prefix", json_object_new_string(t.prefix));
		json_object_object_add(o, "lockfile_sha256", json_object_new_string(h));
		json_object_object_foreach(json_object_object_get(t.pkg, "dependencies"), name, want)
		{
			(void)want;
			json_object *e = locked(&t, name), *d = json_object_new_object();
			json_object_object_add(d, "name", json_object_new_string(name));
			json_object_object_add(d, "version", json_object_new_string(str(e, "version")));
			json_object_object_add(d, "integrity", json_object_new_string(str(e, "integrity")));
			json_object_array_add(deps, d);
		}
		json_object_object_add(o, "dependencies", deps);
		if (t.build)
			json_object_object_add(o, "build_from_source", json_object_get(t.build));
		json_object_array_add(out, o);
		tree_done(&t);
	}
	return out;
}
