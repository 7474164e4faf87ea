/* Downloads pinned by SHA-256 for the build (download.h). */
#include "download.h"
#include "hash.h"
#include "log.h"
#include "rootfs.h"
#include "util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <time.h>

#define ATTEMPTS 4

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

int download_verified(const char *what, const char *url, const char *want, const char *dest, uint64_t *ret_bytes)
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
			log_info("%s: %s, trying again", what, *err ? err : curl_easy_strerror(cr));
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
		r = -EIO, log_error("%s: cannot download '%s': %s", what, url, *err ? err : curl_easy_strerror(cr));
	if (r == 0) {
		uint8_t digest[32];
		char got[65];
		sha256_final(&d.sha, digest);
		sha256_hex(digest, got);
		if (!STREQ(got, want)) {
			log_error("%s: '%s' has sha256 %s, but the profile pins %s: not using it", what, url, got, want);
			r = -EBADMSG;
		}
	}
	if (r == 0 && rename(tmp, dest) < 0)
		r = log_errno(-errno, "cannot rename '%s'", tmp);
	if (r < 0)
		unlink(tmp);
	else
		*ret_bytes = d.bytes;
	return r;
}
