/* pinokio: Pinokio's daemon (pinokiod) for a user of its own, with the fleet's launchers.
 *
 *   - pinokiod is baked into the image by the build (rootfs.npm: `npm ci` from a committed
 *     lockfile, its native module built for the image's Node) under "prefix"; the step checks
 *     the baked copy is the pinned one: its package.json's version is "version", the lockfile
 *     it was installed from pins it with "integrity" (npm ci checked every package's hash);
 *   - a system user "pinokio" (systemd-sysusers, /etc/sysusers.d/pmoves-pinokio.conf) with a
 *     login shell (Pinokio's apps run shells), home /home/pinokio, Pinokio's home
 *     /home/pinokio/pinokio (PINOKIO_HOME);
 *   - the apps: each launcher directory (/etc/pmoves/pinokio/APP, a machine's own, e.g. from a
 *     device config's files, else /usr/share/pmoves/pinokio/APP, baked from the repository's
 *     pinokio/) copied to PINOKIO_HOME/api/APP, the user's, once: an app already there is the
 *     user's and left alone (Pinokio installs into it). "apps" picks them; by default every
 *     one there is;
 *   - pinokio.service runs `node .../pinokiod/script/index.js` as the user. pinokiod listens
 *     on port 42000 on every address and has no authentication (whoever reaches it has a
 *     shell as the user): an nftables table of its own accepts the port from loopback and the
 *     "allow" interfaces (the tailnet) and drops it from every other;
 *   - then, on the running system once it has booted: GET /check answers, /pinokio/version is
 *     the pinned version and /info/apps lists every app; SERVED records it (check wants it). */
#include "download.h"
#include "fb-guard.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#define USER "pinokio"
#define HOME_DIR "/home/pinokio"
#define PINOKIO_HOME HOME_DIR "/pinokio"
#define API_DIR PINOKIO_HOME "/api"
#define SYSUSERS "/etc/sysusers.d/pmoves-pinokio.conf"
#define UNIT "/etc/systemd/system/pinokio.service"
#define FW_UNIT "/etc/systemd/system/pmoves-pinokio-firewall.service"
#define NFT "/etc/pmoves/pinokio.nft"
#define SERVED "/var/lib/pmoves/pinokio/served"
#define SERVICE "pinokio.service"
#define FW_SERVICE "pmoves-pinokio-firewall.service"
#define NODE "/usr/bin/node"
#define BAKED_APPS "/usr/share/pmoves/pinokio"
#define LOCAL_APPS "/etc/pmoves/pinokio"
#define DEFAULT_PREFIX "/usr/lib/pmoves/pinokiod"
#define PORT 42000 /* pinokiod's, fixed in its code */
#define URL "http://127.0.0.1:42000"
#define MAX_APPS 32
#define MAX_ALLOW 16
#define APP_DEPTH 8
#define APP_FILE_MAX (16u << 20)
#define APP_FILES_MAX 4096
#define JSON_MAX (8u << 20)
#define ANSWER_MAX (1u << 20)
#define START_WAIT 90 /* seconds for pinokiod to answer */

/* ---- config ---- */

static const struct fb_format fmt_version = {
	.name = "pinokio_version",
	.message = "'%s' is not an exact npm version (\"5.3.28\")",
	.pattern = "^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]{1,40})?$",
};

static const struct fb_format fmt_integrity = {
	.name = "pinokio_integrity",
	.message = "'%s' is not an npm integrity hash (\"sha512-\" and 88 base64 characters, as `npm view pinokiod "
		   "dist.integrity` shows it)",
	.pattern = "^sha512-[A-Za-z0-9+/]{86}==$",
};

#define APP_RE "[a-z0-9][a-z0-9._-]{0,63}"
static const struct fb_format fmt_app = {
	.name = "pinokio_app",
	.message = "'%s' is not an app name (a directory name: a-z, 0-9, '.', '_', '-')",
	.pattern = "^" APP_RE "$",
};

static int valid_apps(struct fb_check *c, json_object *v)
{
	return fb_valid_unique(c, v, NULL, "app");
}

static const struct fb_field app_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_app, 0, 0 };
static const struct fb_field allow_elem = { NULL, FB_T_STRING, NULL, NULL, &fb_fmt_ifname, 0, 0 };
static const struct fb_field pinokio_fields[] = {
	{ "version", FB_T_STRING, NULL, NULL, &fmt_version, FB_REQUIRED, 0 },
	{ "integrity", FB_T_STRING, NULL, NULL, &fmt_integrity, FB_REQUIRED, 0 },
	{ "prefix", FB_T_STRING, NULL, NULL, &fb_fmt_unit_path, 0, FB_PATH_MAX },
	{ "apps", FB_T_ARRAY, &app_elem, valid_apps, NULL, 0, MAX_APPS },
	{ "allow", FB_T_ARRAY, &allow_elem, NULL, NULL, 0, MAX_ALLOW },
	FB_FIELDS_END,
};
static const struct fb_field pinokio_schema = { NULL, FB_T_OBJECT, pinokio_fields, NULL, NULL, 0, 0 };

static const struct fb_guard guard = {
	.step = "pinokio",
	.table = "pmoves_pinokio",
	.nft = NFT,
	.unit = FW_UNIT,
	.service = SERVICE,
	.what = "Pinokio's web UI and API",
	.where = "loopback and the tailnet",
};

static const char *const allow_default[] = { "tailscale0", NULL };

struct conf {
	const char *version, *integrity, *prefix;
	json_object *allow;
	char **apps; /* the names, sorted */
};

static void conf_done(struct conf *c)
{
	strv_free(c->apps);
}

/* The app directories under DIR (names fmt_app takes; others are not apps) into *APPS. */
static int apps_in(const char *dir, char ***apps)
{
	_cleanup_close_ int fd = fb_open_dir(dir, false);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d)
		return -errno;
	fd = -1;
	int r = 0;
	for (struct dirent *e; r == 0 && (errno = 0, e = readdir(d));) {
		struct stat st;
		if (e->d_name[0] == '.' || !fb_format_ok(&fmt_app, e->d_name) || strv_contains(*apps, e->d_name) ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (strv_length(*apps) >= MAX_APPS)
			r = -E2BIG;
		else
			r = strv_push(apps, e->d_name);
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	return r;
}

static int conf_load(json_object *section, struct conf *c)
{
	*c = (struct conf){
		.version = fb_json_str(section, "version", ""),
		.integrity = fb_json_str(section, "integrity", ""),
		.prefix = fb_json_str(section, "prefix", DEFAULT_PREFIX),
	};
	json_object_object_get_ex(section, "allow", &c->allow);
	json_object *apps;
	int r = 0;
	if (json_object_object_get_ex(section, "apps", &apps)) {
		for (size_t i = 0; r == 0 && i < json_object_array_length(apps); i++)
			r = strv_push(&c->apps, json_object_get_string(json_object_array_get_idx(apps, i)));
	} else if ((r = apps_in(LOCAL_APPS, &c->apps)) == 0)
		r = apps_in(BAKED_APPS, &c->apps);
	if (r < 0)
		return r;
	if (c->apps)
		strv_sort(c->apps);
	return 0;
}

/* ---- the files ---- */

static const char sysusers[] = "# Written by pmoves-firstboot (pinokio step).\n"
			       "u " USER " - \"Pinokio\" " HOME_DIR " /bin/bash\n";

/* pinokiod has no options: port 42000, every address, its home from PINOKIO_HOME (unless its
 * settings page stored another in ~/.pinokio/config.json). On SIGTERM it kills its own process
 * tree, itself last, with SIGKILL. */
static char *unit_text(const struct conf *c)
{
	return fb_strdupf("# Written by pmoves-firstboot (pinokio step).\n"
			  "[Unit]\n"
			  "Description=Pinokio (pinokiod %s)\n"
			  "After=network-online.target " FW_SERVICE "\n"
			  "Wants=network-online.target\n"
			  "Requires=" FW_SERVICE "\n\n"
			  "[Service]\n"
			  "User=" USER "\n"
			  "Group=" USER "\n"
			  "WorkingDirectory=" HOME_DIR "\n"
			  "Environment=\"HOME=" HOME_DIR "\" \"PINOKIO_HOME=" PINOKIO_HOME "\"\n"
			  "Environment=PINOKIO_NETWORK_ACTIVE=0 PINOKIO_HTTPS_ACTIVE=0\n"
			  "ExecStart=" NODE " %s/node_modules/pinokiod/script/index.js\n"
			  "SuccessExitStatus=SIGKILL\n"
			  "Restart=on-failure\n"
			  "RestartSec=5\n\n"
			  "[Install]\n"
			  "WantedBy=multi-user.target\n",
			  c->version, c->prefix);
}

struct files {
	struct fb_guard_files guard;
	char *unit;
};

static void files_done(struct files *f)
{
	fb_guard_files_done(&f->guard);
	free(f->unit);
}

static int files_make(const struct conf *c, struct files *f)
{
	f->unit = unit_text(c);
	return f->unit ? fb_guard_files_make(&guard, c->allow, allow_default, PORT, &f->guard) : -ENOMEM;
}

static int files_in_place(const struct files *f)
{
	int r;
	if ((r = fb_guard_files_in_place(&guard, &f->guard)) <= 0 || (r = fb_file_is(UNIT, f->unit, strlen(f->unit))) <= 0)
		return r;
	return fb_file_is(SYSUSERS, sysusers, strlen(sysusers));
}

/* ---- the baked pinokiod ---- */

static int read_json(const char *abs, json_object **ret, char **ret_msg)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = fb_read(abs, JSON_MAX, &text, &len);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", abs, strerror(-r));
		return r;
	}
	*ret = strlen(text) == len ? json_tokener_parse(text) : NULL;
	if (!json_object_is_type(*ret, json_type_object)) {
		json_object_put(*ret);
		*ret = NULL;
		*ret_msg = fb_strdupf("'%s' is not a JSON object", abs);
		return -EBADMSG;
	}
	return 0;
}

/* The copy under PREFIX is the pinned one: 0, or -errno with *ret_msg. */
static int baked_check(const struct conf *c, char **ret_msg)
{
	_cleanup_free_ char *pkg_path = fb_strdupf("%s/node_modules/pinokiod/package.json", c->prefix);
	_cleanup_free_ char *lock_path = fb_strdupf("%s/package-lock.json", c->prefix);
	_cleanup_free_ char *main_path = fb_strdupf("%s/node_modules/pinokiod/script/index.js", c->prefix);
	_cleanup_(fb_json_putp) json_object *pkg = NULL, *lock = NULL;
	if (!pkg_path || !lock_path || !main_path)
		return -ENOMEM;
	int r = fb_exists(pkg_path);
	if (r == 0) {
		*ret_msg = fb_strdupf("pinokiod is not in the image ('%s' is missing): the profile bakes it (rootfs.npm)",
				      pkg_path);
		return -ENOENT;
	}
	if (r < 0 || (r = read_json(pkg_path, &pkg, ret_msg)) < 0 || (r = read_json(lock_path, &lock, ret_msg)) < 0)
		return r < 0 ? r : -EIO;
	const char *have = fb_json_str(pkg, "version", "?");
	json_object *pkgs = NULL, *entry = NULL;
	json_object_object_get_ex(lock, "packages", &pkgs);
	json_object_object_get_ex(pkgs, "node_modules/pinokiod", &entry);
	const char *locked = fb_json_str(entry, "integrity", "none");
	if (!STREQ(have, c->version)) {
		*ret_msg = fb_strdupf("the image has pinokiod %s, not the pinned %s", FB_SHOW(have), c->version);
		return -EBADMSG;
	}
	if (!STREQ(locked, c->integrity) || !STREQ(fb_json_str(entry, "version", ""), c->version)) {
		*ret_msg = fb_strdupf("pinokiod in the image was installed from a lockfile pinning %s, not the pinned %s",
				      FB_SHOW(locked), c->integrity);
		return -EBADMSG;
	}
	if ((r = fb_exists(main_path)) <= 0) {
		*ret_msg = fb_strdupf("'%s' is missing", main_path);
		return r < 0 ? r : -ENOENT;
	}
	return 0;
}

/* ---- the apps ---- */

/* Where app NAME's launcher comes from: the machine's own, else the image's. NULL: neither. */
static const char *app_source(const char *name)
{
	_cleanup_free_ char *local = fb_strdupf(LOCAL_APPS "/%s/pinokio.js", name);
	return local && fb_exists(local) == 1 ? LOCAL_APPS : BAKED_APPS;
}

struct copy {
	uid_t uid;
	gid_t gid;
	unsigned files;
	const char *app;
	char **ret_msg;
};

/* FROM's NAME into TO as a new file, renamed over whatever was there (a link there is
 * replaced, never followed): a crash leaves the old file or the new one, never half of one. */
static int copy_file(struct copy *cp, int from, int to, const char *name, const struct stat *st)
{
	_cleanup_close_ int in = openat(from, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat now;
	if (in < 0 || fstat(in, &now) < 0)
		return -errno;
	if (!S_ISREG(now.st_mode) || now.st_size != st->st_size || (uint64_t)now.st_size > APP_FILE_MAX)
		return -EINVAL;
	char tmp[NAME_MAX + 1];
	if (snprintf(tmp, sizeof(tmp), ".pmoves-%.200s.tmp", name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	/* The directory is the user's: O_EXCL never opens what they may have put there. */
	if (unlinkat(to, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	_cleanup_close_ int out = openat(to, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	int r = copy_fd_range(in, 0, out, 0, (uint64_t)now.st_size);
	if (r == 0 && (fchmod(out, (now.st_mode & 0111) ? 0755 : 0644) < 0 || fchown(out, cp->uid, cp->gid) < 0 ||
		       fsync(out) < 0 || renameat(to, tmp, to, name) < 0))
		r = -errno;
	if (r < 0)
		unlinkat(to, tmp, 0);
	return r;
}

/* Directory FROM's files and directories into TO (both open), the user's; pinokio.js at the
 * top last, so that its presence says the copy is whole. Anything else is refused. */
static int copy_dir(struct copy *cp, int from, int to, unsigned depth)
{
	int dfd = dup(from);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	int r = 0;
	for (struct dirent *e; r == 0 && (errno = 0, e = readdir(d));) {
		const char *name = e->d_name;
		struct stat st;
		if (STREQ(name, ".") || STREQ(name, "..") || (depth == 0 && STREQ(name, "pinokio.js")))
			continue;
		if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			break;
		}
		if (++cp->files > APP_FILES_MAX) {
			*cp->ret_msg = fb_strdupf("app '%s': more than %d files", cp->app, APP_FILES_MAX);
			r = -E2BIG;
		} else if (S_ISDIR(st.st_mode) && depth < APP_DEPTH) {
			if (mkdirat(to, name, 0755) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			_cleanup_close_ int sub_from = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			_cleanup_close_ int sub_to = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			struct stat dst;
			if (sub_from < 0 || sub_to < 0 || fstat(sub_to, &dst) < 0)
				r = -errno;
			else if (dst.st_uid != 0 && dst.st_uid != cp->uid)
				r = -EPERM;
			else if (fchown(sub_to, cp->uid, cp->gid) < 0 || fchmod(sub_to, 0755) < 0)
				r = -errno;
			else
				r = copy_dir(cp, sub_from, sub_to, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			r = copy_file(cp, from, to, name, &st);
		} else {
			*cp->ret_msg = fb_strdupf("app '%s': '%s' is not a file or a directory (or is %d levels down)", cp->app,
						  name, APP_DEPTH);
			r = -EINVAL;
		}
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	if (r == 0 && depth == 0) {
		struct stat st;
		if (fstatat(from, "pinokio.js", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			r = -ENOENT;
		else if ((r = copy_file(cp, from, to, "pinokio.js", &st)) == 0 && fsync(to) < 0)
			r = -errno;
	}
	return r;
}

/* App NAME in Pinokio's home: 1 there (its launcher), 0 not, -errno. */
static int app_there(const char *name)
{
	_cleanup_free_ char *p = fb_strdupf(API_DIR "/%s/pinokio.js", name);
	return p ? fb_exists(p) : -ENOMEM;
}

static int app_install(const char *name, uid_t uid, gid_t gid, char **ret_msg)
{
	const char *top = app_source(name);
	_cleanup_free_ char *src = fb_strdupf("%s/%s", top, name), *dst = fb_strdupf(API_DIR "/%s", name);
	if (!src || !dst)
		return -ENOMEM;
	_cleanup_close_ int from = fb_open_dir(src, false);
	if (from < 0) {
		*ret_msg = fb_strdupf("app '%s': no launcher in '" LOCAL_APPS "' or '" BAKED_APPS "' (%s)", name,
				      strerror(-from));
		return from;
	}
	_cleanup_close_ int to = fb_user_dir(dst, uid, gid, 0755);
	if (to < 0) {
		*ret_msg = fb_strdupf("cannot make '%s' the user's: %s%s", dst, strerror(-to),
				      to == -ELOOP ? " (a symbolic link on the way)" : "");
		return to;
	}
	struct copy cp = { .uid = uid, .gid = gid, .app = name, .ret_msg = ret_msg };
	int r = copy_dir(&cp, from, to, 0);
	if (r < 0 && !*ret_msg)
		*ret_msg = fb_strdupf("cannot copy app '%s' from '%s' to '%s': %s", name, src, dst,
				      r == -ENOENT ? "it has no pinokio.js" : strerror(-r));
	return r;
}

/* The user's homes and every app: 0, or -errno with *ret_msg. */
static int home_make(const struct conf *c, char **ret_msg)
{
	unsigned uid, gid;
	int r = fb_user_ids(USER, &uid, &gid, ret_msg);
	if (r < 0)
		return r;
	static const char *const dirs[] = { HOME_DIR, PINOKIO_HOME, API_DIR };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		/* Through no link: the user owns these, and may have put one in. */
		_cleanup_close_ int fd = fb_user_dir(dirs[i], uid, gid, i == 0 ? 0750 : 0755);
		if (fd < 0) {
			*ret_msg = fb_strdupf("cannot make '%s' the user's: %s%s", dirs[i], strerror(-fd),
					      fd == -ELOOP ? " (a symbolic link on the way)" : "");
			return fd;
		}
	}
	for (size_t i = 0; c->apps && c->apps[i]; i++) {
		if ((r = app_there(c->apps[i])) < 0) {
			*ret_msg = fb_strdupf("cannot look at app '%s': %s", c->apps[i], strerror(-r));
			return r;
		}
		if (r == 0 && (r = app_install(c->apps[i], uid, gid, ret_msg)) < 0)
			return r;
	}
	return 0;
}

/* ---- pinokiod's API ---- */

static int get(const char *path, unsigned timeout, json_object **ret, char **ret_msg)
{
	struct download_opts o = { .connect_timeout = 5, .timeout = timeout, .user_agent = "pmoves-firstboot" };
	_cleanup_free_ char *buf = NULL, *error = NULL, *url = fb_strdupf(URL "%s", path);
	long status;
	if (!url)
		return -ENOMEM;
	int r = http_request("GET", url, NULL, ANSWER_MAX, &o, &status, &buf, NULL, &error);
	if (r < 0) {
		*ret_msg = fb_strdupf("GET %s: %s", path, error ? error : strerror(-r));
		return r;
	}
	json_object *o2 = *buf ? json_tokener_parse(buf) : NULL;
	if (status != 200 || !json_object_is_type(o2, json_type_object)) {
		json_object_put(o2);
		*ret_msg = status != 200 ? fb_strdupf("GET %s: HTTP %ld", path, status)
					 : fb_strdupf("GET %s: the answer is not a JSON object", path);
		return -EIO;
	}
	*ret = o2;
	return 0;
}

/* Wait for GET /check to say {"success": true}: 0, or -errno with *ret_msg. */
static int api_up(unsigned wait, char **ret_msg)
{
	int r = -ETIMEDOUT;
	for (unsigned t = 0; t <= wait; t++) {
		_cleanup_(fb_json_putp) json_object *o = NULL;
		free(*ret_msg);
		*ret_msg = NULL;
		if ((r = get("/check", 10, &o, ret_msg)) == 0) {
			json_object *ok;
			if (json_object_object_get_ex(o, "success", &ok) && json_object_get_boolean(ok))
				return 0;
			r = -EIO;
		} else if (r != -ECONNREFUSED && r != -ETIMEDOUT && r != -EIO)
			return r; /* -EIO too: an error answer, or a dropped connection, while it starts */
		if (t < wait)
			sleep(1);
	}
	_cleanup_free_ char *why = TAKE_PTR(*ret_msg);
	*ret_msg = fb_strdupf("pinokiod does not answer on " URL " after %u s (journalctl -u " SERVICE "): %s", wait,
			      why ? why : strerror(-r));
	return r;
}

/* /pinokio/version is the pinned version and /info/apps lists every app: 0, or -errno with
 * *ret_msg. */
static int serve_verify(const struct conf *c, char **ret_msg)
{
	_cleanup_(fb_json_putp) json_object *ver = NULL, *apps = NULL;
	int r;
	if ((r = fb_guard_loaded(&guard, PORT)) <= 0) {
		*ret_msg = fb_strdupf("the nftables table '%s' is not loaded", guard.table);
		return r < 0 ? r : -EIO;
	}
	if ((r = get("/pinokio/version", 30, &ver, ret_msg)) < 0 || (r = get("/info/apps", 60, &apps, ret_msg)) < 0)
		return r;
	const char *have = fb_json_str(ver, "pinokiod", "?");
	if (!STREQ(have, c->version)) {
		*ret_msg = fb_strdupf("pinokiod answers as version %s, not the pinned %s", FB_SHOW(have), c->version);
		return -EBADMSG;
	}
	json_object *list;
	if (!json_object_object_get_ex(apps, "apps", &list) || !json_object_is_type(list, json_type_array)) {
		*ret_msg = strdup("GET /info/apps: the answer has no \"apps\" list");
		return -EBADMSG;
	}
	for (size_t i = 0; c->apps && c->apps[i]; i++) {
		bool found = false;
		for (size_t j = 0; !found && j < json_object_array_length(list); j++)
			found = STREQ(fb_json_str(json_object_array_get_idx(list, j), "name", ""), c->apps[i]);
		if (!found) {
			*ret_msg = fb_strdupf("pinokiod does not list app '%s' (GET /info/apps)", c->apps[i]);
			return -ENOENT;
		}
	}
	_cleanup_free_ char *names = strv_join(c->apps, ", ");
	_cleanup_free_ char *allow = fb_guard_ifaces(c->allow, allow_default);
	*ret_msg = fb_strdupf("pinokiod %s answers on port %d, reachable from %s only; apps: %s", c->version, PORT,
			      allow ? allow : "?", names && *names ? names : "none");
	return 0;
}

static char *served_text(const struct conf *c)
{
	_cleanup_free_ char *names = strv_join(c->apps, " ");
	return names ? fb_strdupf("# Written by pmoves-firstboot (pinokio step): pinokiod seen serving these\n"
				  "%s %s\napps %s\n", c->version, c->integrity, names)
		     : NULL;
}

/* ---- the step ---- */

static int pinokio_check(const struct fb_ctx *ctx, json_object *section, char **ret_msg)
{
	(void)ctx, (void)ret_msg;
	_cleanup_(conf_done) struct conf c = { 0 };
	_cleanup_(files_done) struct files f = { 0 };
	int r = conf_load(section, &c);
	if (r < 0 || (r = files_make(&c, &f)) < 0)
		return r;
	_cleanup_free_ char *served = served_text(&c);
	if (!served)
		return -ENOMEM;
	if ((r = files_in_place(&f)) <= 0 || (r = fb_file_is(SERVED, served, strlen(served))) <= 0 ||
	    (r = fb_unit_running(FW_SERVICE)) <= 0 || (r = fb_unit_running(SERVICE)) <= 0)
		return r;
	for (size_t i = 0; c.apps && c.apps[i]; i++)
		if ((r = app_there(c.apps[i])) <= 0)
			return r;
	if (!fb_live())
		return 1;
	_cleanup_free_ char *why = NULL;
	if ((r = fb_guard_loaded(&guard, PORT)) <= 0)
		return r;
	_cleanup_(fb_json_putp) json_object *o = NULL;
	return get("/check", 10, &o, &why) == 0;
}

static enum fb_result pinokio_apply(const struct fb_ctx *ctx, json_object *section, char **ret_msg)
{
	(void)ctx;
	_cleanup_(conf_done) struct conf c = { 0 };
	_cleanup_(files_done) struct files f = { 0 };
	int r = conf_load(section, &c);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot list the apps in '" LOCAL_APPS "' and '" BAKED_APPS "': %s",
				      r == -E2BIG ? "more than 32" : strerror(-r));
		return FB_FAILED;
	}
	if ((r = files_make(&c, &f)) < 0)
		return FB_FAILED;
	if (baked_check(&c, ret_msg) < 0)
		return FB_FAILED;
	if ((r = fb_exists(NODE)) != 1) {
		*ret_msg = strdup("Node is not installed (" NODE "): the profile's rootfs.packages need nodejs");
		return FB_FAILED;
	}
	if (fb_guard_files_write(&guard, &f.guard, ret_msg) < 0)
		return FB_FAILED;
	if ((r = fb_write(UNIT, f.unit, strlen(f.unit), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write '" UNIT "': %s", strerror(-r));
		return FB_FAILED;
	}
	if (fb_sysusers(SYSUSERS, sysusers, ret_msg) < 0)
		return FB_FAILED;
	if (!fb_dry_run() && home_make(&c, ret_msg) < 0)
		return FB_FAILED;
	if (fb_unit_enable(FW_SERVICE, true, ret_msg) < 0 || fb_unit_enable(SERVICE, true, ret_msg) < 0)
		return FB_FAILED;
	if (!fb_live()) {
		*ret_msg = strdup("Pinokio is set up; it starts, and is checked, on the running system");
		return FB_PENDING;
	}
	if (fb_system_booting()) {
		*ret_msg = strdup("Pinokio starts once the boot is done: the next run checks it");
		return FB_PENDING;
	}
	if (fb_guard_load(&guard, PORT, ret_msg) < 0)
		return FB_FAILED;
	if (fb_dry_run())
		return FB_OK;
	if (api_up(START_WAIT, ret_msg) < 0 || serve_verify(&c, ret_msg) < 0)
		return FB_FAILED;
	_cleanup_free_ char *served = served_text(&c);
	if (!served || (r = fb_write(SERVED, served, strlen(served), 0644, 0, 0)) < 0) {
		free(*ret_msg);
		*ret_msg = fb_strdupf("cannot write '%s': %s", SERVED, strerror(served ? -r : ENOMEM));
		return FB_FAILED;
	}
	return FB_OK;
}

const struct fb_step step_pinokio = {
	.name = "pinokio",
	.config_key = "pinokio",
	.schema = &pinokio_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = pinokio_check,
	.apply = pinokio_apply,
};
