/* Baked artifacts: downloaded with libcurl at build time (https://, or http:// to loopback
 * only), verified by SHA-256, cached by hash, copied into the image's artifact cache. */
#include "artifacts.h"
#include "hash.h"
#include "log.h"
#include "rootfs.h"
#include "util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#define IMAGE_CACHE "/var/cache/pmoves/artifacts"
#define ATTEMPTS 4

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

static bool url_ok(const char *url)
{
	static const char *const local[] = { "http://127.0.0.1", "http://localhost", "http://[::1]" };
	if (!url || strpbrk(url, " \t\r\n"))
		return false;
	if (!strncmp(url, "https://", 8))
		return url[8] && url[8] != '/';
	for (size_t i = 0; i < ARRAY_SIZE(local); i++) {
		size_t n = strlen(local[i]);
		if (!strncmp(url, local[i], n) && (url[n] == ':' || url[n] == '/'))
			return true;
	}
	return false;
}

struct sink {
	int fd;
	struct sha256 sha;
	uint64_t bytes;
	int err;
};

static size_t on_data(char *data, size_t size, size_t n, void *userdata)
{
	struct sink *d = userdata;
	size_t len = size * n;
	for (size_t done = 0; done < len;) {
		ssize_t w = write(d->fd, data + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			d->err = -errno;
			return 0;
		}
		done += (size_t)w;
	}
	sha256_update(&d->sha, data, len);
	d->bytes += len;
	return build_interrupted() ? 0 : len;
}

static bool transient(CURLcode cr, long http)
{
	switch (cr) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		return true;
	case CURLE_HTTP_RETURNED_ERROR:
		return http >= 500 || http == 408 || http == 429;
	default:
		return false;
	}
}

/* URL into DEST when its SHA-256 is WANT: a temp file beside DEST, renamed when verified. */
static int download(const char *name, const char *url, const char *want, const char *dest)
{
	_cleanup_free_ char *tmp = NULL, *no_proxy = NULL;
	const char *env = getenv("no_proxy");
	if (!env || !*env)
		env = getenv("NO_PROXY");
	if (asprintf(&tmp, "%s.tmp-%d", dest, (int)getpid()) < 0 ||
	    asprintf(&no_proxy, "127.0.0.1,localhost,::1%s%s", env && *env ? "," : "", env && *env ? env : "") < 0)
		return -ENOMEM;
	bool http = !strncmp(url, "http://", 7);
	CURLcode cr = CURLE_FAILED_INIT;
	long code = 0;
	char err[CURL_ERROR_SIZE] = "";
	struct sink d = { .fd = -1 };
	for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
		if (attempt) {
			log_info("artifacts: '%s': %s, trying again", name, *err ? err : curl_easy_strerror(cr));
			struct timespec ts = { .tv_sec = 1L << (attempt - 1) };
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !build_interrupted())
				;
		}
		if (build_interrupted())
			return -EINTR;
		if (d.fd >= 0)
			close(d.fd);
		d = (struct sink){ .fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) };
		if (d.fd < 0)
			return log_errno(-errno, "cannot create '%s'", tmp);
		sha256_init(&d.sha);
		CURL *c = curl_easy_init();
		if (!c) {
			close(d.fd);
			unlink(tmp);
			return -ENOMEM;
		}
		err[0] = '\0';
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, http ? "http" : "https");
		curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, http ? "http" : "https");
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "pmoves-image/" PMOVES_VERSION);
		curl_easy_setopt(c, CURLOPT_NOPROXY, no_proxy);
		const char *ca = getenv("SSL_CERT_FILE");
		if (ca && *ca)
			curl_easy_setopt(c, CURLOPT_CAINFO, ca);
		cr = curl_easy_perform(c);
		code = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_cleanup(c);
		if (cr == CURLE_OK || d.err || build_interrupted() || !transient(cr, code))
			break;
	}
	int r = 0;
	if (close(d.fd) < 0)
		r = -errno;
	if (build_interrupted())
		r = -EINTR;
	else if (d.err)
		r = log_errno(d.err, "cannot write '%s'", tmp);
	else if (cr != CURLE_OK)
		r = -EIO, log_error("artifact '%s': cannot download '%s': %s", name, url, *err ? err : curl_easy_strerror(cr));
	if (r == 0) {
		uint8_t digest[32];
		char got[65];
		sha256_final(&d.sha, digest);
		sha256_hex(digest, got);
		if (!STREQ(got, want)) {
			log_error("artifact '%s': '%s' has sha256 %s, but the profile pins %s: not baked", name, url, got, want);
			r = -EBADMSG;
		}
	}
	if (r == 0 && rename(tmp, dest) < 0)
		r = log_errno(-errno, "cannot rename '%s'", tmp);
	if (r < 0)
		unlink(tmp);
	else
		log_info("artifacts: '%s': downloaded %" PRIu64 " bytes, sha256 verified", name, d.bytes);
	return r;
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

int artifacts_bake(struct build *b)
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
		    !url_ok(url)) {
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
		else if ((r = download(name, url, sha, cached)) < 0)
			return r;
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
		json_object_object_add(o, "baked", json_object_new_boolean(baked(a)));
		char *path = NULL;
		if (baked(a) && asprintf(&path, IMAGE_CACHE "/%s", str_of(a, "name") ? str_of(a, "name") : "") >= 0)
			json_object_object_add(o, "path", json_object_new_string(path));
		free(path);
		json_object_array_add(out, o);
	}
	return out;
}
