/* libcurl, used for two things only: the config URL and the report POST. */
#include "fb-fetch.h"
#include "firstboot.h"
#include "util.h"

#include <curl/curl.h>
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
