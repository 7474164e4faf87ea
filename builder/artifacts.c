/* Baked artifacts: downloaded with libcurl at build time (https://, or http:// to loopback
 * only), verified by SHA-256, cached by hash, copied into the image's artifact cache. */
#include "artifacts.h"
#include "download.h"
#include "fetch.h"
#include "hash-file.h"
#include "hash.h"
#include "log.h"
#include "rootfs.h"
#include "stages.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#define IMAGE_CACHE "/var/cache/pmoves/artifacts"

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static bool baked(json_object *a)
{
	json_object *v;
	return json_object_object_get_ex(a, "bake", &v) && json_object_get_boolean(v);
}

static int copy_into_tree(struct build *b, const char *from, const char *name)
{
	_cleanup_free_ char *rel = NULL;
	if (asprintf(&rel, IMAGE_CACHE "/%s", name) < 0)
		return -ENOMEM;
	int r = tree_mkdir_p(b, IMAGE_CACHE, 0755);
	if (r < 0)
		return log_errno(r, "cannot create '%s' in the image", IMAGE_CACHE);
	_cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0)
		return log_errno(-errno, "cannot open '%s'", from);
	_cleanup_close_ int out = tree_open(b, rel, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
	if (out < 0)
		return log_errno(out, "cannot create '%s' in the image", rel);
	r = copy_fd_range(in, 0, out, 0, (uint64_t)st.st_size);
	struct timespec t[2] = { { .tv_sec = (time_t)b->epoch }, { .tv_sec = (time_t)b->epoch } };
	if (r == 0 && (fchmod(out, 0644) < 0 || futimens(out, t) < 0))
		r = -errno;
	if (r < 0)
		return log_errno(r, "cannot copy '%s' into the image", name);
	return 0;
}

int stage_artifacts(struct build *b)
{
	json_object *arts = json_object_object_get(b->p->json, "artifacts");
	size_t n = arts ? json_object_array_length(arts) : 0, done = 0;
	_cleanup_free_ char *dir = NULL;
	for (size_t i = 0; i < n; i++) {
		json_object *a = json_object_array_get_idx(arts, i);
		if (!baked(a))
			continue;
		const char *name = str_of(a, "name"), *url = str_of(a, "url"), *sha = str_of(a, "sha256");
		/* pmoves-firstboot's schema checked these already (firstboot_validate); they make
		 * paths here, so once more. */
		if (!name || !valid_name(name, 64) || !sha || strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64 ||
		    url_check(url, URL_HTTPS_OR_LOCAL, NULL) < 0) {
			log_error("%s: .artifacts[%zu]: a baked artifact needs a valid name, an https:// url and a sha256", b->p->path, i);
			return -EINVAL;
		}
		int r;
		if (!dir) {
			_cleanup_free_ char *base = NULL;
			if ((r = rootfs_cache_dir(&base)) < 0)
				return log_errno(r, "cannot create the download cache directory (set XDG_CACHE_HOME or HOME)");
			if (asprintf(&dir, "%s/artifacts", base) < 0)
				return -ENOMEM;
			if ((r = mkdir_p(dir, 0755)) < 0)
				return log_errno(r, "cannot create '%s'", dir);
		}
		_cleanup_free_ char *cached = NULL;
		if (asprintf(&cached, "%s/%s", dir, sha) < 0)
			return -ENOMEM;
		char got[65];
		r = b->refresh ? -ENOENT : sha256_file(cached, got);
		if (r == 0 && STREQ(got, sha))
			log_info("artifacts: '%s': using the cached download '%s'", name, cached);
		else {
			_cleanup_free_ char *what = NULL;
			if (asprintf(&what, "artifact '%s'", name) < 0)
				return -ENOMEM;
			uint64_t bytes;
			if ((r = fetch_pinned(what, url, sha, cached, &bytes)) < 0)
				return r;
			log_info("artifacts: '%s': downloaded %" PRIu64 " bytes, sha256 verified", name, bytes);
		}
		if ((r = copy_into_tree(b, cached, name)) < 0)
			return r;
		done++;
	}
	if (done)
		log_info("artifacts: %zu baked into '%s'", done, IMAGE_CACHE);
	return 0;
}

json_object *artifacts_manifest(const struct profile *p)
{
	json_object *out = json_object_new_array(), *arts = json_object_object_get(p->json, "artifacts");
	size_t n = arts ? json_object_array_length(arts) : 0;
	for (size_t i = 0; out && i < n; i++) {
		json_object *a = json_object_array_get_idx(arts, i), *o = json_object_new_object();
		if (!o)
			break;
		static const char *const keys[] = { "name", "url", "sha256", "kind" };
		for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
			const char *v = str_of(a, keys[k]);
			json_object_object_add(o, keys[k], json_object_new_string(v ? v : ""));
		}
		/* What the profile says of the release: "version", and "note" (such as "sha256 not
		 * verified here"), when given. */
		static const char *const given[] = { "version", "note" };
		for (size_t k = 0; k < ARRAY_SIZE(given); k++)
			if (str_of(a, given[k]))
				json_object_object_add(o, given[k], json_object_new_string(str_of(a, given[k])));
		json_object_object_add(o, "baked", json_object_new_boolean(baked(a)));
		char *path = NULL;
		if (baked(a) && asprintf(&path, IMAGE_CACHE "/%s", str_of(a, "name") ? str_of(a, "name") : "") >= 0)
			json_object_object_add(o, "path", json_object_new_string(path));
		free(path);
		json_object_array_add(out, o);
	}
	return out;
}
