/* HTTP(S) through libcurl (download.h). */
#include "download.h"
#include "hash.h"
#include "util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define DL_CONNECT_TIMEOUT 15u
#define DL_TIMEOUT 900u
#define DL_ATTEMPTS 4u
#define DL_MAX_SIZE (UINT64_C(4) << 30)
/* Small GETs and POSTs (configs, keys, reports). */
#define SMALL_CONNECT_TIMEOUT 10u
#define SMALL_TIMEOUT 30u

static void set_error(char **ret, char *msg)
{
	if (ret) {
		free(*ret);
		*ret = msg;
	} else
		free(msg);
}

/* ---- URLs ---- */

struct url_parts {
	char *scheme, *host, *port, *path;
	bool userinfo; /* a user (and maybe a password) before the host */
};

static void url_parts_done(struct url_parts *p)
{
	curl_free(p->scheme);
	curl_free(p->host);
	curl_free(p->port);
	curl_free(p->path);
	*p = (struct url_parts){ 0 };
}

/* Through libcurl's own parser, so the host is the one it will connect to. */
static int url_parse(const char *url, struct url_parts *ret)
{
	*ret = (struct url_parts){ 0 };
	CURLU *u = curl_url();
	if (!u)
		return -ENOMEM;
	int r = -EINVAL;
	if (url && !strpbrk(url, " \t\r\n") && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &ret->scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &ret->host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &ret->path, 0) == CURLUE_OK) {
		if (curl_url_get(u, CURLUPART_PORT, &ret->port, 0) != CURLUE_OK)
			ret->port = NULL;
		char *user = NULL;
		ret->userinfo = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK;
		curl_free(user);
		r = 0;
	}
	curl_url_cleanup(u);
	if (r < 0)
		url_parts_done(ret);
	return r;
}

static bool host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	size_t n = strlen(host);
	if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		char inner[64];
		if (n - 2 >= sizeof(inner))
			return false;
		memcpy(inner, host + 1, n - 2);
		inner[n - 2] = '\0';
		return inet_pton(AF_INET6, inner, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

int url_check(const char *url, enum url_rule rule, char **ret_why)
{
	struct url_parts p;
	int r = url_parse(url, &p);
	if (r == -ENOMEM)
		return r;
	const char *why = NULL;
	if (r < 0)
		why = "not a URL";
	else if (!STREQ(p.scheme, "https") && !STREQ(p.scheme, "http"))
		why = "not an https:// URL";
	else if (STREQ(p.scheme, "http") && rule == URL_HTTPS)
		why = "plain http:// is refused (use https://)";
	else if (STREQ(p.scheme, "http") && rule == URL_HTTPS_OR_LOCAL && !host_is_loopback(p.host))
		why = "http:// is allowed to 127.0.0.1, ::1 and localhost only (use https://)";
	url_parts_done(&p);
	if (!why)
		return 0;
	if (ret_why) {
		_cleanup_free_ char *shown = url_shown(url);
		*ret_why = strdupf("'%s': %s", shown ? shown : "?", why);
	}
	return -EINVAL;
}

char *url_shown(const char *url)
{
	struct url_parts p;
	int r = url_parse(url, &p);
	if (r == -ENOMEM)
		return NULL;
	if (r < 0)
		return strdup("(an invalid URL)");
	char *s = strdupf("%s://%s%s%s%s", p.scheme, p.host, p.port ? ":" : "", p.port ? p.port : "", p.path);
	url_parts_done(&p);
	return s;
}

bool url_has_userinfo(const char *url)
{
	struct url_parts p;
	if (url_parse(url, &p) < 0)
		return false;
	bool has = p.userinfo;
	url_parts_done(&p);
	return has;
}

/* ---- one transfer ---- */

static CURL *easy_new(const char *url, const struct download_opts *o, unsigned connect_timeout, unsigned timeout)
{
	static bool initialised;
	if (!initialised && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return NULL;
	initialised = true;
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	/* https follows https redirects; http (loopback, or pinned by the caller) none, so a
	 * redirect cannot take it to another host in the clear. */
	bool http = strncasecmp(url, "http://", 7) == 0;
	const char *ca = getenv("SSL_CERT_FILE");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, http ? "http" : "https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, http ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)connect_timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, o && o->user_agent ? o->user_agent : "pmoves");
	if (ca && *ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	return h;
}

/* libcurl's no_proxy plus loopback: CURLOPT_NOPROXY replaces the environment's list. */
static char *no_proxy_list(void)
{
	const char *env = getenv("no_proxy");
	if (!env || !*env)
		env = getenv("NO_PROXY");
	if (env && STREQ(env, "*"))
		return strdup("*");
	return strdupf("127.0.0.1,localhost,::1%s%s", env && *env ? "," : "", env && *env ? env : "");
}

static bool cancelled(const struct download_opts *o)
{
	return o && o->cancelled && o->cancelled();
}

/* 1 s, 2 s, 4 s, ... at most 32 s before attempt ATTEMPT (from 1); false when cancelled. */
static bool backoff(const struct download_opts *o, unsigned attempt)
{
	struct timespec ts = { .tv_sec = 1L << (attempt - 1 < 5 ? attempt - 1 : 5) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !cancelled(o))
		;
	return !cancelled(o);
}

/* ---- pinned downloads ---- */

struct dl {
	int fd;
	bool stream; /* download_stream: FD is written in order and what went out stays out */
	struct sha256 sha;
	uint64_t have; /* bytes in FD (a stream: written to it), all hashed */
	uint64_t max;
	const struct download_opts *o;
	int err;
	bool too_big;
};

static size_t dl_write(char *data, size_t size, size_t n, void *userdata)
{
	struct dl *d = userdata;
	size_t len = size * n;
	if (cancelled(d->o))
		return 0;
	if (len > d->max - d->have) {
		d->too_big = true;
		return 0;
	}
	int r = d->stream ? write_full(d->fd, data, len) : pwrite_full(d->fd, data, len, d->have);
	if (r == 0)
		r = sha256_update(&d->sha, data, len);
	if (r < 0) {
		d->err = r;
		return 0;
	}
	d->have += len;
	return len;
}

/* Empty FD: the next attempt starts from byte 0. A stream cannot take back what it wrote: with
 * bytes out, -ESPIPE and nothing changes; with none, there is nothing to empty. */
static int dl_restart(struct dl *d)
{
	if (d->stream && d->have > 0)
		return -ESPIPE;
	sha256_free(&d->sha);
	d->have = 0;
	if (!d->stream && ftruncate(d->fd, 0) < 0)
		return -errno;
	return sha256_init(&d->sha);
}

/* FD's bytes hashed from its start. */
static int dl_hash_existing(struct dl *d)
{
	struct stat st;
	if (fstat(d->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	int r = sha256_init(&d->sha);
	if (r < 0)
		return r;
	if ((uint64_t)st.st_size > d->max)
		return dl_restart(d);
	char buf[65536];
	for (uint64_t off = 0; off < (uint64_t)st.st_size;) {
		ssize_t n = pread(d->fd, buf, sizeof(buf), (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		if ((r = sha256_update(&d->sha, buf, (size_t)n)) < 0)
			return r;
		off += (uint64_t)n;
	}
	d->have = (uint64_t)st.st_size;
	return 0;
}

static int dl_attempt(const char *url, struct dl *d, const struct download_opts *o, const char *no_proxy,
		      long *ret_http, char err[CURL_ERROR_SIZE])
{
	CURL *h = easy_new(url, o, o->connect_timeout, o->timeout);
	if (!h)
		return CURLE_OUT_OF_MEMORY;
	err[0] = '\0';
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_size);
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

/* What a failed attempt means: try again (-EAGAIN, -ETIMEDOUT, -ENETUNREACH) or not (-EIO). */
static int dl_errno(CURLcode rc, long http)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return -ENETUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_HTTP_RETURNED_ERROR:
		return http >= 500 || http == 408 || http == 429 ? -EAGAIN : -EIO;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

/* The digest of what FD holds now, the transfer going on. */
static int dl_digest(const struct dl *d, char out[65])
{
	struct sha256 copy;
	int r = sha256_copy(&copy, &d->sha);
	return r < 0 ? r : sha256_final_hex(&copy, out);
}

/* The attempts; *why: what went wrong last (malloc'd). */
static int dl_loop(struct dl *d, const char *url, const char *shown, const char *sha256, const struct download_opts *o,
		   char **why)
{
	_cleanup_free_ char *no_proxy = no_proxy_list();
	if (!no_proxy)
		return -ENOMEM;
	char err[CURL_ERROR_SIZE], got[65];
	bool restarted = false;
	int r = -EAGAIN;
	for (unsigned attempt = 0; attempt < o->attempts; attempt++) {
		if (attempt) {
			if (o->retrying && *why)
				o->retrying(o->ctx, *why);
			if (!backoff(o, attempt))
				return -EINTR;
		}
		bool resumed = d->have > 0;
		long http = 0;
		d->err = 0;
		d->too_big = false;
		CURLcode rc = dl_attempt(url, d, o, no_proxy, &http, err);
		if (cancelled(o))
			return -EINTR;
		if (d->err) {
			set_error(why, strdupf("cannot write the download of '%s': %s", shown, strerror(-d->err)));
			return d->err;
		}
		if (d->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			dl_restart(d);
			set_error(why, strdupf("'%s' is larger than %" PRIu64 " bytes", shown, o->max_size));
			return -EFBIG;
		}
		if (rc == CURLE_OK || (rc == CURLE_HTTP_RETURNED_ERROR && http == 416 && resumed)) {
			if ((r = dl_digest(d, got)) < 0)
				return r;
			if (STREQ(got, sha256))
				return 0;
			/* A resumed file whose start was not this content: once more from byte 0. Not
			 * a stream: its reader has had every byte already. */
			if (!d->stream && (resumed || rc != CURLE_OK) && !restarted && attempt + 1 < o->attempts) {
				restarted = true;
				if ((r = dl_restart(d)) < 0)
					return r;
				set_error(why, strdupf("'%s': the resumed file did not match", shown));
				continue;
			}
			/* A 416 to a resumed file that does not match, and no start over left: emptied
			 * for the next try, and a failure (r still held dl_digest's 0). */
			if (!d->stream && rc != CURLE_OK) {
				if ((r = dl_restart(d)) < 0)
					return r;
				set_error(why, strdupf("'%s': the resumed file did not match", shown));
				r = -EAGAIN;
				continue;
			}
			dl_restart(d);
			set_error(why, strdupf("'%s' has sha256 %s, but %s is pinned", shown, got, sha256));
			return -EBADMSG;
		}
		if (rc == CURLE_RANGE_ERROR || (rc == CURLE_HTTP_RETURNED_ERROR && http == 416)) {
			/* The server does not resume: the whole file again, now; a stream that has
			 * written some of it cannot, and the next attempt would be refused the same. */
			if (d->stream && d->have > 0) {
				set_error(why, strdupf("'%s': the server does not resume downloads, and a stream cannot start over",
						       shown));
				return -EIO;
			}
			if ((r = dl_restart(d)) < 0)
				return r;
			set_error(why, strdupf("'%s': the server does not resume downloads", shown));
			r = -EAGAIN;
			continue;
		}
		r = dl_errno(rc, http);
		set_error(why, strdupf("cannot download '%s': %s%s", shown, *err ? err : curl_easy_strerror(rc),
					     rc == CURLE_PARTIAL_FILE || rc == CURLE_OPERATION_TIMEDOUT
						     ? " (what came is kept and resumed)"
						     : ""));
		if (r == -EIO)
			return r;
	}
	return r;
}

static int dl_run(int fd, bool stream, const char *url, const char *sha256, const struct download_opts *opts,
		  char **ret_error)
{
	struct download_opts o = opts ? *opts : (struct download_opts){ 0 };
	if (!o.connect_timeout)
		o.connect_timeout = DL_CONNECT_TIMEOUT;
	if (!o.timeout)
		o.timeout = DL_TIMEOUT;
	if (!o.attempts)
		o.attempts = DL_ATTEMPTS;
	if (!o.max_size)
		o.max_size = DL_MAX_SIZE;
	if (!sha256 || strlen(sha256) != 64 || strspn(sha256, "0123456789abcdef") != 64)
		return -EINVAL;
	int r = url_check(url, o.any_http ? URL_PINNED : URL_HTTPS_OR_LOCAL, ret_error);
	if (r < 0)
		return r;
	_cleanup_free_ char *shown = url_shown(url);
	if (!shown)
		return -ENOMEM;
	struct dl d = { .fd = fd, .stream = stream, .max = o.max_size, .o = &o };
	_cleanup_free_ char *why = NULL;
	/* A stream starts from nothing: what went through FD before is not ours to read. */
	r = stream ? sha256_init(&d.sha) : dl_hash_existing(&d);
	if (r == 0)
		r = dl_loop(&d, url, shown, sha256, &o, &why);
	sha256_free(&d.sha);
	if (r < 0)
		set_error(ret_error, TAKE_PTR(why));
	return r;
}

int download_fd(int fd, const char *url, const char *sha256, const struct download_opts *o, char **ret_error)
{
	return dl_run(fd, false, url, sha256, o, ret_error);
}

int download_stream(int fd, const char *url, const char *sha256, const struct download_opts *o, char **ret_error)
{
	return dl_run(fd, true, url, sha256, o, ret_error);
}

/* ---- small GETs and POSTs ---- */

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

static size_t discard(char *data, size_t size, size_t n, void *userdata)
{
	(void)data, (void)userdata;
	return size * n;
}

static unsigned small_attempts(const struct download_opts *o) { return o && o->attempts ? o->attempts : DL_ATTEMPTS; }

int http_get(const char *url, size_t max, const struct download_opts *o, char **ret_buf, size_t *ret_len,
	     char **ret_error)
{
	_cleanup_free_ char *no_proxy = no_proxy_list(), *shown = url_shown(url);
	if (!no_proxy || !shown)
		return -ENOMEM;
	CURLcode rc = CURLE_OK;
	struct sink s = { .max = max };
	for (unsigned attempt = 0; attempt < small_attempts(o); attempt++) {
		if (attempt && !backoff(o, attempt)) {
			free(s.buf);
			return -EINTR;
		}
		CURL *h = easy_new(url, o, o && o->connect_timeout ? o->connect_timeout : SMALL_CONNECT_TIMEOUT,
				   o && o->timeout ? o->timeout : SMALL_TIMEOUT);
		if (!h) {
			free(s.buf);
			return -ENOMEM;
		}
		free(s.buf);
		s = (struct sink){ .max = max };
		curl_easy_setopt(h, CURLOPT_NOPROXY, no_proxy);
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
		set_error(ret_error, s.too_big ? strdupf("'%s' is larger than %zu bytes", shown, max)
					       : strdupf("cannot fetch '%s': %s", shown, curl_easy_strerror(rc)));
		free(s.buf);
		return s.too_big ? -EFBIG : -EIO;
	}
	*ret_buf = s.buf;
	*ret_len = s.len;
	return 0;
}

int http_post_json(const char *url, const char *body, const struct download_opts *o, char **ret_error)
{
	int r = url_check(url, URL_HTTPS, ret_error);
	if (r < 0)
		return r;
	_cleanup_free_ char *no_proxy = no_proxy_list(), *shown = url_shown(url);
	if (!no_proxy || !shown)
		return -ENOMEM;
	CURLcode rc = CURLE_OK;
	for (unsigned attempt = 0; attempt < small_attempts(o); attempt++) {
		if (attempt && !backoff(o, attempt))
			return -EINTR;
		CURL *h = easy_new(url, o, o && o->connect_timeout ? o->connect_timeout : SMALL_CONNECT_TIMEOUT,
				   o && o->timeout ? o->timeout : SMALL_TIMEOUT);
		if (!h)
			return -ENOMEM;
		struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_NOPROXY, no_proxy);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
		rc = curl_easy_perform(h);
		curl_easy_cleanup(h);
		curl_slist_free_all(headers);
		if (rc == CURLE_OK)
			return 0;
	}
	set_error(ret_error, strdupf("cannot post to '%s': %s", shown, curl_easy_strerror(rc)));
	return -EIO;
}

int http_request(const char *method, const char *url, const char *body, size_t max, const struct download_opts *o,
		 long *ret_status, char **ret_buf, size_t *ret_len, char **ret_error)
{
	_cleanup_free_ char *no_proxy = no_proxy_list(), *shown = url_shown(url);
	if (!no_proxy || !shown)
		return -ENOMEM;
	CURL *h = easy_new(url, o, o && o->connect_timeout ? o->connect_timeout : SMALL_CONNECT_TIMEOUT,
			   o && o->timeout ? o->timeout : SMALL_TIMEOUT);
	if (!h)
		return -ENOMEM;
	struct sink s = { .max = max };
	struct curl_slist *headers = NULL;
	bool ok = true;
	if (body)
		ok = (headers = curl_slist_append(headers, "Content-Type: application/json")) != NULL;
	for (size_t i = 0; ok && o && o->headers && o->headers[i]; i++) {
		struct curl_slist *more = curl_slist_append(headers, o->headers[i]);
		ok = more != NULL;
		headers = more ? more : headers;
	}
	if (!ok) {
		curl_slist_free_all(headers);
		curl_easy_cleanup(h);
		return -ENOMEM;
	}
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 0L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, no_proxy);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (headers)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	curl_slist_free_all(headers);
	if (rc == CURLE_OK && !s.buf)
		s.buf = calloc(1, 1);
	if (rc != CURLE_OK || !s.buf) {
		int r = s.too_big ? -EFBIG
			: rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
			: rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED
			: rc == CURLE_OK ? -ENOMEM : -EIO;
		set_error(ret_error, s.too_big ? strdupf("the answer of '%s' is larger than %zu bytes", shown, max)
					       : strdupf("%s '%s': %s", method, shown, rc == CURLE_OK ? strerror(ENOMEM) : curl_easy_strerror(rc)));
		free(s.buf);
		return r;
	}
	*ret_status = status;
	*ret_buf = s.buf;
	if (ret_len)
		*ret_len = s.len;
	return 0;
}
