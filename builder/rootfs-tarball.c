/* Root filesystem from a tarball: a local file, or an https URL pinned by sha256 and cached. */
#include "hash.h"
#include "log.h"
#include "rootfs.h"
#include "util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

struct download {
	int fd;
	struct sha256 sha;
	uint64_t bytes;
	int err;
};

static size_t on_data(char *data, size_t size, size_t n, void *userdata)
{
	struct download *d = userdata;
	size_t len = size * n;
	for (size_t done = 0; done < len;) {
		ssize_t w = write(d->fd, data + done, len - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			d->err = -errno;
			return 0;
		}
		done += (size_t)w;
	}
	sha256_update(&d->sha, data, len);
	d->bytes += len;
	return build_interrupted() ? 0 : len;
}

static int download(struct build *b, const char *url, const char *want, const char *dest)
{
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp-%d", dest, (int)getpid()) < 0)
		return -ENOMEM;
	struct download d = { .fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) };
	if (d.fd < 0)
		return log_errno(-errno, "cannot create '%s'", tmp);
	sha256_init(&d.sha);

	log_info("rootfs: downloading '%s'", url);
	CURL *c = curl_easy_init();
	char err[CURL_ERROR_SIZE] = "";
	CURLcode cr = CURLE_FAILED_INIT;
	if (c) {
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
		curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
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
		/* Trust another CA bundle the way OpenSSL programs do (private mirrors, tests). */
		const char *ca = getenv("SSL_CERT_FILE");
		if (ca && *ca)
			curl_easy_setopt(c, CURLOPT_CAINFO, ca);
		curl_easy_setopt(c, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
		cr = curl_easy_perform(c);
		curl_easy_cleanup(c);
	}
	int r = 0;
	if (close(d.fd) < 0)
		r = -errno;
	if (build_interrupted())
		r = -EINTR;
	else if (d.err)
		r = log_errno(d.err, "cannot write '%s'", tmp);
	else if (cr != CURLE_OK)
		r = -EIO, log_error("cannot download '%s': %s", url, *err ? err : curl_easy_strerror(cr));
	if (r == 0) {
		uint8_t digest[32];
		char got[65];
		sha256_final(&d.sha, digest);
		sha256_hex(digest, got);
		if (!STREQ(got, want)) {
			log_error("'%s' has sha256 %s, but the profile pins %s: not using it", url, got, want);
			r = -EBADMSG;
		}
	}
	if (r == 0 && rename(tmp, dest) < 0)
		r = log_errno(-errno, "cannot rename '%s'", tmp);
	if (r < 0)
		unlink(tmp);
	else
		log_info("rootfs: downloaded %" PRIu64 " bytes, sha256 verified", d.bytes);
	(void)b;
	return r;
}

static int tarball_get(struct build *b, char **ret_tar)
{
	const struct profile *p = b->p;
	struct stat st;
	if (p->rootfs.path) {
		if (stat(p->rootfs.path, &st) < 0)
			return log_errno(-errno, "rootfs tarball '%s'", p->rootfs.path);
		if (!S_ISREG(st.st_mode)) {
			log_error("rootfs tarball '%s' is not a regular file", p->rootfs.path);
			return -EINVAL;
		}
		if (p->rootfs.sha256) {
			char got[65];
			int r = sha256_file(p->rootfs.path, got);
			if (r < 0)
				return log_errno(r, "cannot read '%s'", p->rootfs.path);
			if (!STREQ(got, p->rootfs.sha256)) {
				log_error("rootfs tarball '%s' has sha256 %s, but the profile pins %s", p->rootfs.path, got,
					  p->rootfs.sha256);
				return -EBADMSG;
			}
		}
		char *copy = strdup(p->rootfs.path);
		if (!copy)
			return -ENOMEM;
		*ret_tar = copy;
		return 0;
	}

	_cleanup_free_ char *dir = NULL, *dest = NULL;
	int r = rootfs_cache_dir(&dir);
	if (r < 0)
		return log_errno(r, "cannot create the rootfs cache directory (set XDG_CACHE_HOME or HOME)");
	if (asprintf(&dest, "%s/download-%s.tar", dir, p->rootfs.sha256) < 0)
		return -ENOMEM;
	if (b->refresh || stat(dest, &st) < 0) {
		r = download(b, p->rootfs.url, p->rootfs.sha256, dest);
		if (r < 0)
			return r;
	} else
		log_info("rootfs: using the cached download '%s'", dest);
	*ret_tar = TAKE_PTR(dest);
	return 0;
}

const struct rootfs_source rootfs_tarball = { "tarball", tarball_get };
