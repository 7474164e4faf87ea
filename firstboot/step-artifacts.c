/* artifacts: third-party software pinned by SHA-256, downloaded (or found baked into the
 * image) and installed by kind.
 *
 * Each artifact {name, url, sha256, kind, target, mode, run, timeout, attempts, bake}:
 *   - the file is /var/cache/pmoves/artifacts/NAME; one already there with the pinned hash (put
 *     there by `pmoves-image build` for "bake": true, or by an earlier run) is used without the
 *     network; otherwise fb_download() fetches it (resuming NAME.part) and verifies it;
 *   - installed by kind: deb -> `dpkg -i` (chroot on a --root tree); tar -> extracted into the
 *     target directory by GNU tar (the tree's, chrooted, on a --root tree) after every entry
 *     name is checked to stay inside it;
 *     binary, appimage -> copied to the target path, mode 0755 unless "mode"; script -> copied
 *     to the target when one is given, and run only when "run" gives its interpreter's argv;
 *   - /var/lib/pmoves/artifacts/NAME records "SHA256 KIND" once installed: check reads it (and
 *     for binaries the installed file's hash), so an artifact is installed once per hash.
 * A hash mismatch installs nothing of that artifact and names both hashes. No network (or a
 * server that keeps failing, or a deadline passed): pending, the next run resumes. */
#include "fb-fetch.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#define CACHE_DIR "/var/cache/pmoves/artifacts"
#define STATE_DIR "/var/lib/pmoves/artifacts"
#define MAX_ARTIFACTS 256
#define TAR_LIST_MAX (64u << 20)

/* ---- config schema (the step record's .schema) ---- */

static const struct fb_format fmt_sha256 = {
	.name = "sha256",
	.message = "'%s' is not a SHA-256 (64 lower-case hex digits, as sha256sum prints)",
	.pattern = "^[0-9a-f]{64}$",
};

static const struct fb_format fmt_kind = {
	.name = "artifact_kind",
	.message = "'%s' is not a kind (deb, tar, binary, appimage, script)",
	.values = (const char *const[]){ "deb", "tar", "binary", "appimage", "script", NULL },
};

/* A path we pass to tar and dpkg: letters, digits, '.', '_', '-', '+', '@'; plain components
 * of at most NAME_MAX - 24 bytes (room for a temp file's suffix). */
#define TARGET_CHAR "[A-Za-z0-9._+@-]"
#define TARGET_FIRST "[A-Za-z0-9_+@-]"
static const struct fb_format fmt_target_chars = {
	.name = "artifact_target_chars",
	.message = "'%s' is not an absolute path (letters, digits, '.', '_', '-', '+', '@', '/')",
	.pattern = "^/[A-Za-z0-9._+@/-]*$",
	.max = PATH_MAX - 1,
};

static const struct fb_format fmt_target = {
	.name = "artifact_target",
	.message = "'%s' must be a plain absolute path (no '.', '..', empty components or trailing '/')",
	.pattern = "^(/(" TARGET_FIRST TARGET_CHAR "{0,230}|\\." TARGET_FIRST TARGET_CHAR "{0,229}|\\.\\." TARGET_CHAR "{1,229}))+$",
	.also = &fmt_target_chars,
};
_Static_assert(NAME_MAX - 24 == 231, "the component limit in fmt_target's pattern");

static const struct fb_format fmt_timeout = {
	.name = "artifact_timeout",
	.message = "must be a whole number from 1 to 86400",
	.integer = true,
	.lo = 1,
	.hi = 86400,
};

static const struct fb_format fmt_attempts = {
	.name = "artifact_attempts",
	.message = "must be a whole number from 1 to 20",
	.integer = true,
	.lo = 1,
	.hi = 20,
};

static const struct fb_format fmt_run_arg = {
	.name = "argument",
	.message = "an argument must not contain control characters",
	.pattern = "^[^\x01-\x1f\x7f]*$",
};

static int valid_run(struct fb_check *c, json_object *v)
{
	if (json_object_array_length(v) == 0)
		return fb_bad(c, "empty: give the interpreter, such as [\"/bin/sh\"]");
	const char *first = json_object_get_string(json_object_array_get_idx(v, 0));
	if (first[0] != '/')
		return fb_bad(c, "'%.64s' is not an absolute path to an interpreter", first);
	return 0;
}

static int valid_artifact(struct fb_check *c, json_object *v)
{
	json_object *x;
	const char *kind = json_object_get_string(json_object_object_get(v, "kind"));
	bool target = json_object_object_get_ex(v, "target", NULL);
	bool needs_target = STREQ(kind, "tar") || STREQ(kind, "binary") || STREQ(kind, "appimage");
	if (needs_target && !target)
		return fb_bad(c, "kind '%s' needs a 'target' (%s)", kind,
			      STREQ(kind, "tar") ? "the directory it is extracted into" : "the path of the installed file");
	if (STREQ(kind, "deb") && target)
		return fb_bad(c, "kind 'deb' takes no 'target' (dpkg installs it)");
	if (json_object_object_get_ex(v, "mode", NULL) && (STREQ(kind, "deb") || STREQ(kind, "tar")))
		return fb_bad(c, "kind '%s' takes no 'mode'", kind);
	if (json_object_object_get_ex(v, "run", &x) && !STREQ(kind, "script"))
		return fb_bad(c, "'run' is for kind 'script' only");
	if (json_object_object_get_ex(v, "target", &x) && !strncmp(json_object_get_string(x), CACHE_DIR, strlen(CACHE_DIR)))
		return fb_bad(c, "the target must not be in '%s'", CACHE_DIR);
	return fb_valid_special_bits(c, v);
}

/* What the vendor calls the release ("0.29.2", "2024.9.0-1"): for manifest.json and people. */
static const struct fb_format fmt_version = {
	.name = "artifact_version",
	.message = "'%s' is not a version (letters, digits, '.', '+', '~', '_', '-')",
	.pattern = "^[A-Za-z0-9.+~_-]+$",
};

/* A remark for people ("sha256 not verified here: ..."): one line of text. */
static const struct fb_format fmt_note = {
	.name = "artifact_note",
	.message = "a note is one line of text without control characters",
	.pattern = "^[^\x01-\x1f\x7f]*$",
};

static int valid_artifacts(struct fb_check *c, json_object *v)
{
	long i = fb_find_duplicate(v, "name", NULL);
	if (i >= 0)
		return fb_bad(c, "artifact '%s' is listed twice", fb_json_str(json_object_array_get_idx(v, (size_t)i), "name", "?"));
	return 0;
}

static const struct fb_field run_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_run_arg, 0, 0 };
static const struct fb_field artifact_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fb_fmt_artifact_name, FB_REQUIRED | FB_ID, 0 },
	{ "url", FB_T_STRING, NULL, fb_valid_download_url, NULL, FB_REQUIRED, 2048 },
	{ "sha256", FB_T_STRING, NULL, NULL, &fmt_sha256, FB_REQUIRED, 0 },
	{ "kind", FB_T_STRING, NULL, NULL, &fmt_kind, FB_REQUIRED, 0 },
	{ "target", FB_T_STRING, NULL, NULL, &fmt_target, 0, 0 },
	{ "mode", FB_T_STRING, NULL, NULL, &fb_fmt_mode, 0, 0 },
	{ "special_bits", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "run", FB_T_ARRAY, &run_elem, valid_run, NULL, 0, 32 },
	{ "timeout", FB_T_SCALAR, NULL, NULL, &fmt_timeout, 0, 0 },
	{ "attempts", FB_T_SCALAR, NULL, NULL, &fmt_attempts, 0, 0 },
	{ "bake", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "version", FB_T_STRING, NULL, NULL, &fmt_version, 0, 64 },
	{ "note", FB_T_STRING, NULL, NULL, &fmt_note, 0, 512 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field artifact_elem = { NULL, FB_T_OBJECT, artifact_fields, valid_artifact, NULL, 0, 0 };
static const struct fb_field artifacts_schema = { NULL, FB_T_ARRAY, &artifact_elem, valid_artifacts, NULL, 0, MAX_ARTIFACTS };

/* ---- one artifact ---- */

struct art {
	const char *name, *url, *sha256, *kind, *target;
	mode_t mode;
	json_object *run;
	struct download_opts opts;
	char *cache; /* CACHE_DIR/NAME */
	char *state; /* STATE_DIR/NAME */
	char *record; /* what STATE holds once installed */
};

static void art_done(struct art *a)
{
	free(a->cache);
	free(a->state);
	free(a->record);
}

static int art_from(json_object *o, struct art *ret)
{
	struct art a = { .name = fb_json_str(o, "name", NULL), .url = fb_json_str(o, "url", NULL), .sha256 = fb_json_str(o, "sha256", NULL),
			 .kind = fb_json_str(o, "kind", NULL), .target = fb_json_str(o, "target", NULL), .mode = 0755 };
	json_object *v;
	if (json_object_object_get_ex(o, "mode", &v))
		a.mode = (mode_t)strtoul(json_object_get_string(v), NULL, 8);
	if (json_object_object_get_ex(o, "timeout", &v))
		a.opts.timeout = (unsigned)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "attempts", &v))
		a.opts.attempts = (unsigned)json_object_get_int64(v);
	json_object_object_get_ex(o, "run", &a.run);
	a.cache = fb_strdupf("%s/%s", CACHE_DIR, a.name);
	a.state = fb_strdupf("%s/%s", STATE_DIR, a.name);
	a.record = fb_strdupf("%s %s %s\n", a.sha256, a.kind, a.target ? a.target : "-");
	if (!a.cache || !a.state || !a.record) {
		art_done(&a);
		return -ENOMEM;
	}
	*ret = a;
	return 0;
}

static bool copies(const struct art *a)
{
	return STREQ(a->kind, "binary") || STREQ(a->kind, "appimage") || (STREQ(a->kind, "script") && a->target);
}

/* 1: installed as the config says; 0: not; -errno. */
static int art_installed(const struct art *a)
{
	int r = fb_file_is(a->state, a->record, strlen(a->record));
	if (r <= 0 || !copies(a))
		return r;
	if ((r = fb_file_sha256_is(a->target, a->sha256)) <= 0)
		return r;
	_cleanup_close_ int fd = fb_open(a->target, O_RDONLY | O_NOFOLLOW, 0);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	return (st.st_mode & 07777) == a->mode;
}

static int mkdir_in_root(const char *abs)
{
	_cleanup_close_ int fd = fb_open_dir(abs, true);
	return fd < 0 ? fd : 0;
}

/* The verified cache file copied to the target: temp file beside it, mode, fsync, rename; all
 * in the target's directory opened inside the root. */
static int copy_to_target(const struct art *a, char **ret_msg)
{
	if (fb_dry_run()) {
		fb_would("copy %s to %s mode %04o", a->cache, a->target, (unsigned)a->mode);
		return 0;
	}
	_cleanup_free_ char *dir = strdup(a->target), *tmp = fb_strdupf("%s.pmoves-tmp", a->target);
	if (!dir || !tmp)
		return -ENOMEM;
	char *slash = strrchr(dir, '/');
	const char *base = a->target + (slash - dir) + 1, *tmp_base = tmp + (slash - dir) + 1;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	_cleanup_close_ int dfd = fb_open_dir(dir, true);
	_cleanup_close_ int in = fb_open(a->cache, O_RDONLY | O_NOFOLLOW, 0);
	if (dfd < 0 || in < 0) {
		*ret_msg = fb_strdupf("artifact '%s': cannot open '%s': %s", a->name, dfd < 0 ? dir : a->cache,
				      strerror(dfd < 0 ? -dfd : -in));
		return dfd < 0 ? dfd : in;
	}
	_cleanup_close_ int out = openat(dfd, tmp_base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	struct stat st;
	int r = 0;
	if (out < 0 || fstat(in, &st) < 0) {
		r = -errno;
		*ret_msg = fb_strdupf("artifact '%s': cannot create '%s': %s", a->name, tmp, strerror(-r));
		return r;
	}
	r = copy_fd_range(in, 0, out, 0, (uint64_t)st.st_size);
	if (r == 0 && (fchmod(out, a->mode) < 0 || fsync(out) < 0))
		r = -errno;
	if (r == 0 && renameat(dfd, tmp_base, dfd, base) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dfd, tmp_base, 0);
		*ret_msg = fb_strdupf("artifact '%s': cannot install '%s': %s", a->name, a->target, strerror(-r));
		return r;
	}
	fsync(dfd);
	return 0;
}

/* Every entry of the tarball stays inside the target: no absolute names, no '..'. */
static int tar_names_ok(const struct art *a, char **ret_msg)
{
	char *argv[] = { "tar", "-t", "-f", a->cache, NULL };
	_cleanup_free_ char *out = NULL;
	int r = fb_run_target_capture(argv, &out);
	if (r != 0) {
		*ret_msg = fb_strdupf("artifact '%s': 'tar -t' cannot read it (exit status %d)", a->name, r);
		return -EIO;
	}
	size_t entries = 0;
	for (char *line = out; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		bool bad = line[0] == '/';
		for (const char *p = line; !bad && *p;) {
			size_t n = strcspn(p, "/");
			bad = n == 2 && p[0] == '.' && p[1] == '.';
			p += n;
			p += *p == '/';
		}
		if (bad) {
			*ret_msg = fb_strdupf("artifact '%s': the entry '%.200s' would land outside '%s': nothing extracted", a->name,
					      line, a->target);
			return -EPERM;
		}
		entries += *line != '\0';
		line = nl ? nl + 1 : NULL;
	}
	if (entries == 0) {
		*ret_msg = fb_strdupf("artifact '%s': the tarball is empty", a->name);
		return -EINVAL;
	}
	return 0;
}

static int install(const struct art *a, char **ret_msg)
{
	int r;
	if (STREQ(a->kind, "binary") || STREQ(a->kind, "appimage"))
		return copy_to_target(a, ret_msg);
	if (STREQ(a->kind, "deb")) {
		char *argv[] = { "dpkg", "-i", a->cache, NULL };
		if ((r = fb_run_target(argv)) != 0) {
			*ret_msg = fb_strdupf("artifact '%s': 'dpkg -i %s' exited with %d", a->name, a->cache, r);
			return -EIO;
		}
		return 0;
	}
	if (STREQ(a->kind, "tar")) {
		if (!fb_dry_run()) {
			if ((r = tar_names_ok(a, ret_msg)) < 0)
				return r;
			if ((r = mkdir_in_root(a->target)) < 0) {
				*ret_msg = fb_strdupf("artifact '%s': cannot create '%s': %s", a->name, a->target, strerror(-r));
				return r;
			}
		}
		/* The tree's tar, chrooted into it on a --root tree: extracting makes paths below
		 * the target, and symlinks already in the tree (absolute ones too) must resolve
		 * inside it. A working directory or /proc/self/fd/N alone would not do that. */
		char *argv[] = { "tar", "-x", "--no-same-owner", "--no-overwrite-dir", "-f", a->cache, "-C", (char *)a->target, NULL };
		if ((r = fb_run_target(argv)) != 0) {
			*ret_msg = fb_strdupf("artifact '%s': extracting into '%s' failed (tar exit status %d)", a->name, a->target, r);
			return -EIO;
		}
		return 0;
	}
	/* script */
	if (a->target && (r = copy_to_target(a, ret_msg)) < 0)
		return r;
	if (!a->run)
		return 0;
	size_t n = json_object_array_length(a->run);
	_cleanup_free_ char **argv = calloc(n + 2, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		argv[i] = (char *)json_object_get_string(json_object_array_get_idx(a->run, i));
	argv[n] = a->target ? (char *)a->target : a->cache;
	if ((r = fb_run_target(argv)) != 0) {
		*ret_msg = fb_strdupf("artifact '%s': running the script with '%s' exited with %d", a->name, argv[0], r);
		return -EIO;
	}
	return 0;
}

/* ---- the step ---- */

static int artifacts_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)ret_msg;
	size_t n = json_object_array_length(section);
	if (n == 0) {
		*ret_msg = strdup("no artifacts listed");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct art a;
		int r = art_from(json_object_array_get_idx(section, i), &a);
		if (r < 0)
			return r;
		r = art_installed(&a);
		art_done(&a);
		if (r <= 0)
			return r;
	}
	return 1;
}

enum art_result { ART_OK, ART_SKIPPED, ART_PENDING, ART_FAILED };

static enum art_result one(json_object *o, bool offline, char **ret_msg)
{
	_cleanup_(art_done) struct art a = { 0 };
	if (art_from(o, &a) < 0)
		return ART_FAILED;
	if (art_installed(&a) == 1)
		return ART_SKIPPED;
	int r;
	if (fb_dry_run()) {
		_cleanup_free_ char *shown = fb_url_shown(a.url); /* without user:password and query */
		if (fb_file_sha256_is(a.cache, a.sha256) == 1)
			fb_would("use %s (baked, sha256 verified)", a.cache);
		else
			fb_would("download %s into %s if its sha256 is %s", shown ? shown : "?", a.cache, a.sha256);
	} else {
		_cleanup_free_ char *err = NULL;
		/* Once the network failed, only what is already here (baked) is used. */
		if (offline && fb_file_sha256_is(a.cache, a.sha256) != 1) {
			*ret_msg = fb_strdupf("artifact '%s': not downloaded (no network): trying again on a later run", a.name);
			return ART_PENDING;
		}
		r = fb_download(a.url, a.cache, a.sha256, &a.opts, &err);
		if (r == -ENETUNREACH || r == -ETIMEDOUT || r == -EAGAIN) {
			*ret_msg = fb_strdupf("artifact '%s': %s: trying again on a later run", a.name, err ? err : strerror(-r));
			return ART_PENDING;
		}
		if (r < 0) {
			*ret_msg = fb_strdupf("artifact '%s': %s%s", a.name, err ? err : strerror(-r),
					      r == -EBADMSG ? ": nothing installed" : "");
			return ART_FAILED;
		}
	}
	if (install(&a, ret_msg) < 0)
		return ART_FAILED;
	if ((r = fb_write(a.state, a.record, strlen(a.record), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write '%s': %s", a.state, strerror(-r));
		return ART_FAILED;
	}
	return ART_OK;
}

static enum fb_result artifacts_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	size_t n = json_object_array_length(section), installed = 0, pending = 0, failed = 0;
	_cleanup_free_ char *first = NULL;
	if (n > MAX_ARTIFACTS)
		return FB_FAILED;
	for (size_t i = 0; i < n; i++) {
		char *msg = NULL;
		enum art_result r = one(json_object_array_get_idx(section, i), pending > 0, &msg);
		if (msg)
			fb_warn("%s", msg);
		installed += r == ART_OK;
		pending += r == ART_PENDING;
		failed += r == ART_FAILED;
		/* The message kept is the first failure's, else the first pending one's. */
		if (msg && (!first || (r == ART_FAILED && failed == 1))) {
			free(first);
			first = msg;
		} else
			free(msg);
	}
	if (failed || pending) {
		*ret_msg = fb_strdupf("%s (%zu installed, %zu pending, %zu failed)", first ? first : "artifacts not installed",
				      installed, pending, failed);
		return failed ? FB_FAILED : FB_PENDING;
	}
	*ret_msg = fb_strdupf("%zu of %zu artifacts installed (the others were already)", installed, n);
	return FB_OK;
}

const struct fb_step step_artifacts = {
	.name = "artifacts",
	.config_key = "artifacts",
	.schema = &artifacts_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = artifacts_check,
	.apply = artifacts_apply,
};
