/* libcurl: the config URL, the report POST, and pinned artifacts (fb_download). */
#include "fb-fetch.h"
#include "firstboot.h"
#include "hash.h"
#include "util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#define FETCH_ATTEMPTS 4

struct sink {
	char *buf;
	size_t len, max;
	bool too_big;
};

static size_t sink_write(char *data, size_t size, size_t n, void *userdata)
{
	struct sink *s = userdata;
	size_t add = size * n;
	if (add > s->max - s->len) {
		s->too_big = true;
		return 0;
	}
	char *nb = realloc(s->buf, s->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + s->len, data, add);
	s->buf = nb;
	s->len += add;
	s->buf[s->len] = '\0';
	return add;
}

static CURL *easy_new(const char *url, const char *protocols)
{
	static bool initialised;
	if (!initialised && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return NULL;
	initialised = true;
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	const char *ca = getenv("SSL_CERT_FILE");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, FB_NAME "/" PMOVES_VERSION);
	if (ca && *ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	return h;
}

static void backoff(unsigned attempt)
{
	struct timespec ts = { .tv_sec = 1L << (attempt < 5 ? attempt : 5) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int fb_fetch(const char *url, size_t max, char **ret_buf, size_t *ret_len, char **ret_error)
{
	bool http = !strncmp(url, "http://", 7);
	CURLcode rc = CURLE_OK;
	struct sink s = { .max = max };
	for (unsigned attempt = 0; attempt < FETCH_ATTEMPTS; attempt++) {
		if (attempt)
			backoff(attempt - 1);
		CURL *h = easy_new(url, http ? "http,https" : "https");
		if (!h)
			return -ENOMEM;
		free(s.buf);
		s = (struct sink){ .max = max };
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
		rc = curl_easy_perform(h);
		curl_easy_cleanup(h);
		if (rc == CURLE_OK || s.too_big)
			break;
	}
	if (rc == CURLE_OK && !s.buf)
		s.buf = calloc(1, 1);
	if (rc != CURLE_OK || !s.buf) {
		if (ret_error)
			*ret_error = s.too_big ? fb_strdupf("larger than %zu bytes", max)
					       : fb_strdupf("%s", curl_easy_strerror(rc));
		free(s.buf);
		return s.too_big ? -EFBIG : -EIO;
	}
	*ret_buf = s.buf;
	*ret_len = s.len;
	return 0;
}

static size_t discard(char *data, size_t size, size_t n, void *userdata)
{
	(void)data, (void)userdata;
	return size * n;
}

int fb_post_json(const char *url, const char *body, unsigned attempts, char **ret_error)
{
	CURLcode rc = CURLE_OK;
	for (unsigned attempt = 0; attempt < attempts; attempt++) {
		if (attempt)
			backoff(attempt - 1);
		CURL *h = easy_new(url, "https");
		if (!h)
			return -ENOMEM;
		struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
		rc = curl_easy_perform(h);
		curl_easy_cleanup(h);
		curl_slist_free_all(headers);
		if (rc == CURLE_OK)
			return 0;
	}
	if (ret_error)
		*ret_error = fb_strdupf("%s", curl_easy_strerror(rc));
	return -EIO;
}

/* ---- pinned artifacts ---- */

#define DL_CONNECT_TIMEOUT 15u
#define DL_TIMEOUT 900u
#define DL_ATTEMPTS 4u
#define DL_MAX_SIZE (4ull << 30)

bool fb_download_url_ok(const char *url)
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

/* URL without "user:password@", for messages. */
static char *url_shown(const char *url)
{
	const char *scheme = strstr(url, "://");
	if (!scheme)
		return strdup(url);
	const char *host = scheme + 3;
	size_t hostlen = strcspn(host, "/?#");
	const char *at = memchr(host, '@', hostlen);
	if (!at)
		return strdup(url);
	return fb_strdupf("%.*s%s", (int)(host - url), url, at + 1);
}

static int hash_fd(int fd, struct sha256 *s, uint64_t *ret_len)
{
	char buf[65536];
	uint64_t len = 0;
	sha256_init(s);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		sha256_update(s, buf, (size_t)n);
		len += (uint64_t)n;
	}
	*ret_len = len;
	return 0;
}

int fb_file_sha256_is(const char *path, const char *sha256)
{
	_cleanup_close_ int fd = fb_open(path, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd == -ENOENT || fd == -ELOOP || fd == -ENOTDIR ? 0 : fd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	struct sha256 s;
	uint64_t len;
	uint8_t d[32];
	char hex[65];
	int r = hash_fd(fd, &s, &len);
	if (r < 0)
		return r;
	sha256_final(&s, d);
	sha256_hex(d, hex);
	return STREQ(hex, sha256);
}

struct dl {
	int fd;
	struct sha256 sha;
	uint64_t have; /* bytes in the part file, all hashed */
	uint64_t max;
	int err;
	bool too_big;
};

static size_t dl_write(char *data, size_t size, size_t n, void *userdata)
{
	struct dl *d = userdata;
	size_t len = size * n;
	if (len > d->max - d->have) {
		d->too_big = true;
		return 0;
	}
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
	d->have += len;
	return len;
}

static int dl_restart(struct dl *d)
{
	if (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0)
		return -errno;
	sha256_init(&d->sha);
	d->have = 0;
	return 0;
}

/* libcurl's no_proxy plus loopback: CURLOPT_NOPROXY replaces the environment's list. */
static char *no_proxy_list(void)
{
	const char *env = getenv("no_proxy");
	if (!env || !*env)
		env = getenv("NO_PROXY");
	if (env && STREQ(env, "*"))
		return strdup("*");
	return fb_strdupf("127.0.0.1,localhost,::1%s%s", env && *env ? "," : "", env && *env ? env : "");
}

/* One attempt: 0, or the curl code and the HTTP status in *ret_http. */
static CURLcode dl_attempt(const char *url, struct dl *d, const struct fb_download_opts *o, const char *no_proxy,
			   long *ret_http, char err[CURL_ERROR_SIZE])
{
	bool http = !strncmp(url, "http://", 7);
	CURL *h = easy_new(url, http ? "http" : "https");
	if (!h)
		return CURLE_OUT_OF_MEMORY;
	err[0] = '\0';
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)o->connect_timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)o->timeout);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_size);
	if (no_proxy)
		curl_easy_setopt(h, CURLOPT_NOPROXY, no_proxy);
	curl_easy_setopt(h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)d->have);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
	CURLcode rc = curl_easy_perform(h);
	*ret_http = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, ret_http);
	curl_easy_cleanup(h);
	return rc;
}

static int dl_finish(const char *part, const char *path, int fd)
{
	if (fsync(fd) < 0)
		return -errno;
	_cleanup_free_ char *hp = fb_path(part), *hpath = fb_path(path);
	if (!hp || !hpath)
		return -ENOMEM;
	if (fchmod(fd, 0644) < 0 || rename(hp, hpath) < 0)
		return -errno;
	char *slash = strrchr(hpath, '/');
	*slash = '\0';
	_cleanup_close_ int dfd = open(*hpath ? hpath : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	return 0;
}

static int open_part(const char *part)
{
	_cleanup_free_ char *hp = fb_path(part);
	if (!hp)
		return -ENOMEM;
	char *slash = strrchr(hp, '/');
	*slash = '\0';
	int r = mkdir_p(*hp ? hp : "/", 0755);
	if (r < 0)
		return r;
	return fb_open(part, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
}

int fb_download(const char *url, const char *path, const char *sha256, const struct fb_download_opts *opts,
		char **ret_error)
{
	struct fb_download_opts o = opts ? *opts : (struct fb_download_opts){ 0 };
	if (!o.connect_timeout)
		o.connect_timeout = DL_CONNECT_TIMEOUT;
	if (!o.timeout)
		o.timeout = DL_TIMEOUT;
	if (!o.attempts)
		o.attempts = DL_ATTEMPTS;
	if (!o.max_size)
		o.max_size = DL_MAX_SIZE;
	_cleanup_free_ char *shown = url ? url_shown(url) : NULL;
	if (!path || path[0] != '/' || !sha256 || strlen(sha256) != 64 || strspn(sha256, "0123456789abcdef") != 64)
		return -EINVAL;
	if (!shown)
		return -ENOMEM;
	if (!fb_download_url_ok(url)) {
		if (ret_error)
			*ret_error = fb_strdupf("'%s' is not an https:// URL", shown);
		return -EINVAL;
	}
	int r = fb_file_sha256_is(path, sha256);
	if (r != 0)
		return r < 0 ? r : 0;

	_cleanup_free_ char *part = fb_strdupf("%s.part", path), *no_proxy = no_proxy_list();
	if (!part || !no_proxy)
		return -ENOMEM;
	_cleanup_close_ int fd = open_part(part);
	if (fd < 0) {
		if (ret_error)
			*ret_error = fb_strdupf("cannot open '%s': %s", part, strerror(-fd));
		return fd;
	}
	struct dl d = { .fd = fd, .max = o.max_size };
	if ((r = hash_fd(fd, &d.sha, &d.have)) < 0)
		return r;
	if (d.have > d.max && (r = dl_restart(&d)) < 0)
		return r;
	if (lseek(fd, 0, SEEK_END) < 0)
		return -errno;

	char err[CURL_ERROR_SIZE];
	_cleanup_free_ char *why = NULL;
	bool restarted = false;
	for (unsigned attempt = 0; attempt < o.attempts; attempt++) {
		if (attempt)
			backoff(attempt - 1);
		bool resumed = d.have > 0;
		long http = 0;
		d.err = 0;
		d.too_big = false;
		CURLcode rc = dl_attempt(url, &d, &o, no_proxy, &http, err);
		free(why);
		why = NULL;
		if (d.err) {
			r = d.err;
			why = fb_strdupf("cannot write '%s': %s", part, strerror(-r));
			break;
		}
		if (d.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			dl_restart(&d);
			r = -EFBIG;
			why = fb_strdupf("'%s' is larger than %llu bytes", shown, o.max_size);
			break;
		}
		if (rc == CURLE_OK || (rc == CURLE_HTTP_RETURNED_ERROR && http == 416 && resumed)) {
			uint8_t dg[32];
			char got[65];
			struct sha256 copy = d.sha;
			sha256_final(&copy, dg);
			sha256_hex(dg, got);
			if (STREQ(got, sha256))
				return dl_finish(part, path, fd);
			/* A resumed file whose start was not this content: once more from byte 0. */
			if ((resumed || rc != CURLE_OK) && !restarted && attempt + 1 < o.attempts) {
				restarted = true;
				if ((r = dl_restart(&d)) < 0)
					return r;
				why = fb_strdupf("'%s': the resumed file did not match", shown);
				continue;
			}
			if (rc != CURLE_OK) {
				dl_restart(&d);
				continue;
			}
			fb_remove(part);
			if (ret_error)
				*ret_error = fb_strdupf("'%s' has sha256 %s, but %s is pinned", shown, got, sha256);
			return -EBADMSG;
		}
		if (rc == CURLE_RANGE_ERROR || (rc == CURLE_HTTP_RETURNED_ERROR && http == 416)) {
			/* The server does not resume: the whole file again, now. */
			if ((r = dl_restart(&d)) < 0)
				return r;
			why = fb_strdupf("'%s': the server does not resume downloads", shown);
			r = -EAGAIN;
			continue;
		}
		const char *what = *err ? err : curl_easy_strerror(rc);
		switch (rc) {
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
			r = -ENETUNREACH;
			break;
		case CURLE_OPERATION_TIMEDOUT:
			r = -ETIMEDOUT;
			break;
		case CURLE_HTTP_RETURNED_ERROR:
			r = http >= 500 || http == 408 || http == 429 ? -EAGAIN : -EIO;
			break;
		case CURLE_PARTIAL_FILE:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			r = -EAGAIN;
			break;
		default:
			r = -EIO;
			break;
		}
		why = fb_strdupf("cannot download '%s': %s%s", shown, what,
				 rc == CURLE_PARTIAL_FILE || rc == CURLE_OPERATION_TIMEDOUT ? " (the part is kept and resumed)" : "");
		if (r == -EIO)
			break;
	}
	if (ret_error)
		*ret_error = TAKE_PTR(why);
	return r < 0 ? r : -EAGAIN;
}
