/* builder/fetch.c: a pinned download into the cache goes through a temp file made with O_EXCL
 * (a symlink planted at its name is not followed), has a size cap before its checksum, and
 * leaves nothing behind when the content is not the pinned one. download_stream into a pipe:
 * whole, pinned at the end, resumed by a Range request and never sent twice, a write error
 * when the reader goes. The server is this test's own, on 127.0.0.1. */
#include "download.h"
#include "fetch.h"
#include "hash.h"
#include "tap.h"
#include "util.h"

#include <dirent.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char body[1000];
static char big[1 << 20]; /* more than a pipe holds */
#define CUT 400           /* bytes of BODY a cut response sends before it closes */

/* One response on C to the request REQ:
 *   /big           BIG, whole;
 *   /cut-resume    no Range: BODY cut after CUT bytes; "Range: bytes=N-": 206 from N (416 past
 *                  the end), as a server that resumes;
 *   /cut-norange   no Range: cut the same; a Range: 200 and the whole BODY, ignoring it;
 *   anything else  BODY, whole, Range or not. */
static void respond(int c, const char *req)
{
	static const char range_hdr[] = "\r\nRange: bytes=";
	const char *data = body, *status = "200 OK", *range = strcasestr(req, range_hdr);
	size_t size = sizeof(body), from = 0, len = sizeof(body);
	bool cut = false;
	char head[256], extra[96] = "";
	if (str_starts_with(req, "GET /big "))
		data = big, size = len = sizeof(big);
	else if (str_starts_with(req, "GET /cut-") && !range)
		cut = true, len = CUT;
	else if (str_starts_with(req, "GET /cut-resume ")) {
		from = strtoul(range + strlen(range_hdr), NULL, 10);
		if (from >= size) {
			status = "416 Range Not Satisfiable", from = size, len = 0;
			snprintf(extra, sizeof(extra), "Content-Range: bytes */%zu\r\n", size);
		} else {
			status = "206 Partial Content", len = size - from;
			snprintf(extra, sizeof(extra), "Content-Range: bytes %zu-%zu/%zu\r\n", from, size - 1, size);
		}
	}
	/* A cut body is announced whole: the client sees it end early. */
	int hn = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
			  status, cut ? size : len, extra);
	if (write_full(c, head, (size_t)hn) == 0 && write_full(c, data + from, len) == 0)
		shutdown(c, SHUT_WR);
}

/* Answer every request on a loopback port (respond) until killed; its port in *RET_PORT. */
static pid_t serve(unsigned *ret_port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 8) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*ret_port = ntohs(a.sin_port);
	pid_t pid = fork();
	if (pid != 0) {
		close(s);
		return pid;
	}
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		char req[4096];
		size_t got = 0;
		while (got < sizeof(req) - 1) {
			ssize_t n = read(c, req + got, sizeof(req) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		respond(c, req);
		close(c);
	}
}

/* Files "blob.tmp-XXXXXX" in DIR (the random temp names of fetch_pinned). */
static size_t temps_beside(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		n += str_starts_with(de->d_name, "blob.tmp-") && strlen(de->d_name) == strlen("blob.tmp-XXXXXX");
	if (d)
		closedir(d);
	return n;
}

/* The other end of a pipe: reads to its end, or closes after CLOSE_AFTER bytes (when not 0).
 * Keeps the first bytes, counts them all: a byte sent twice shows in TOTAL. */
struct reader {
	int fd;
	size_t close_after;
	size_t total;
	char buf[3 * sizeof(body)];
};

static void *reader_run(void *p)
{
	struct reader *rd = p;
	char chunk[4096];
	for (;;) {
		size_t want = sizeof(chunk);
		if (rd->close_after && rd->close_after - rd->total < want)
			want = rd->close_after - rd->total;
		if (want == 0)
			break;
		ssize_t n = read(rd->fd, chunk, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (rd->total < sizeof(rd->buf))
			memcpy(rd->buf + rd->total, chunk,
			       (size_t)n < sizeof(rd->buf) - rd->total ? (size_t)n : sizeof(rd->buf) - rd->total);
		rd->total += (size_t)n;
	}
	close(rd->fd);
	return NULL;
}

/* download_stream of URL into a pipe whose reader is a thread (RD, CLOSE_AFTER: struct reader). */
static int stream_to_reader(const char *url, const char *sha, const struct download_opts *o, size_t close_after,
			    struct reader *rd, char **ret_error)
{
	int p[2];
	pthread_t t;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	*rd = (struct reader){ .fd = p[0], .close_after = close_after };
	if (pthread_create(&t, NULL, reader_run, rd) != 0) {
		close(p[0]);
		close(p[1]);
		return -EAGAIN;
	}
	int r = download_stream(p[1], url, sha, o, ret_error);
	close(p[1]);
	pthread_join(t, NULL);
	return r;
}

static unsigned retries;
static void count_retry(void *ctx, const char *why)
{
	(void)ctx;
	retries++;
	tap_diag("retrying: %s", why);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 4096);
	char sha[65], big_sha[65], dir[] = "/tmp/test-fetch-XXXXXX";
	unsigned port = 0;
	if (sha256_hex_of(body, sizeof(body), sha) < 0 || sha256_hex_of(big, sizeof(big), big_sha) < 0 || !mkdtemp(dir))
		abort();
	/* A reader that goes must be a write error, not a signal: download_stream's contract, and
	 * the server's (forked below) when the client hangs up. */
	signal(SIGPIPE, SIG_IGN);
	pid_t server = serve(&port);
	if (server < 0) {
		tap_skip_all("cannot listen on 127.0.0.1");
		return 0;
	}
	_cleanup_free_ char *url = strdupf("http://127.0.0.1:%u/blob", port), *dest = strdupf("%s/blob", dir),
			    *victim = strdupf("%s/victim", dir), *tmp = strdupf("%s/blob.tmp-%d", dir, (int)getpid()),
			    *text = NULL;

	/* A symlink at the name a temp file once had ('<dest>.tmp-<pid>'), to a file that must not
	 * change: the temp name is random now, the symlink is not followed, not even looked at. */
	tap_ok(write_file_atomic(victim, "precious", 8, 0644) == 0 && symlink(victim, tmp) == 0,
	       "a symlink planted at '<dest>.tmp-<pid>'");
	uint64_t bytes = 0;
	int r = fetch_pinned("blob", url, sha, dest, &bytes);
	tap_ok(r == 0 && bytes == sizeof(body), "fetch_pinned downloads the pinned content (%d, %llu bytes)", r,
	       (unsigned long long)bytes);
	tap_ok(read_file(victim, 100, &text, NULL) == 0 && STREQ(text, "precious"), "the symlink's target is untouched");
	free(TAKE_PTR(text));
	struct stat st;
	tap_ok(lstat(dest, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == (off_t)sizeof(body),
	       "DEST is a regular file with the content");
	tap_is_int((long long)temps_beside(dir), 0, "no temp file left beside DEST (but the planted symlink)");

	/* Not the pinned content: nothing at DEST or beside it. */
	unlink(dest);
	r = fetch_pinned("blob", url, "0000000000000000000000000000000000000000000000000000000000000000", dest, &bytes);
	tap_is_int(r, -EBADMSG, "another sha256: -EBADMSG");
	tap_ok(lstat(dest, &st) < 0 && temps_beside(dir) == 0, "... and nothing left at DEST or beside it");

	/* The size cap holds before the checksum: the transfer stops past max_size. */
	_cleanup_free_ char *capped = strdupf("%s/capped", dir), *err = NULL;
	_cleanup_close_ int fd = open(capped, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	struct download_opts o = { .max_size = 100, .attempts = 1 };
	r = fd < 0 ? -errno : download_fd(fd, url, sha, &o, &err);
	tap_is_int(r, -EFBIG, "a body past max_size: -EFBIG, whatever its checksum");
	bool stat_ok = fd >= 0 && fstat(fd, &st) == 0;
	tap_ok(stat_ok && st.st_size == 0, "... and the file emptied (%lld bytes)", stat_ok ? (long long)st.st_size : -1LL);

	/* A file that holds as much as the server has, but not its content: the server answers the
	 * Range with 416, and with no attempt left to start over that is no success. */
	_cleanup_free_ char *stale = strdupf("%s/stale", dir),
			    *cut_resume = strdupf("http://127.0.0.1:%u/cut-resume", port);
	_cleanup_close_ int sfd = open(stale, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	char junk[sizeof(body)];
	memset(junk, 'z', sizeof(junk));
	struct download_opts one = { .attempts = 1 };
	free(TAKE_PTR(err));
	r = sfd < 0 ? -errno : pwrite_full(sfd, junk, sizeof(junk), 0);
	if (r == 0)
		r = download_fd(sfd, cut_resume, sha, &one, &err);
	tap_is_int(r, -EAGAIN, "download_fd, a stale file as long as the content and one attempt: -EAGAIN, not 0");
	tap_contains(err, "the resumed file did not match", "... saying why");
	stat_ok = sfd >= 0 && fstat(sfd, &st) == 0;
	tap_ok(stat_ok && st.st_size == 0, "... and the file emptied for the next try (%lld bytes)",
	       stat_ok ? (long long)st.st_size : -1LL);

	/* download_stream: into a pipe, whole and in order. */
	_cleanup_free_ char *cut_norange = strdupf("http://127.0.0.1:%u/cut-norange", port),
			    *big_url = strdupf("http://127.0.0.1:%u/big", port);
	static const char wrong[] = "0000000000000000000000000000000000000000000000000000000000000000";
	struct reader rd;
	free(TAKE_PTR(err));
	r = stream_to_reader(url, sha, NULL, 0, &rd, &err);
	tap_is_int(r, 0, "download_stream into a pipe: 0 (%s)", err ? err : "no error");
	tap_ok(rd.total == sizeof(body) && memcmp(rd.buf, body, sizeof(body)) == 0,
	       "... and the reader got the body, whole and equal (%zu bytes)", rd.total);

	/* The pin is checked at the end: the reader has had every byte. */
	free(TAKE_PTR(err));
	r = stream_to_reader(url, wrong, NULL, 0, &rd, &err);
	tap_is_int(r, -EBADMSG, "download_stream, another sha256: -EBADMSG");
	tap_ok(rd.total == sizeof(body) && memcmp(rd.buf, body, sizeof(body)) == 0,
	       "... after the reader got every byte (%zu)", rd.total);
	tap_contains(err, sha, "... the message names the sha256 that came");
	tap_contains(err, wrong, "... and the pinned one");

	/* Cut after CUT bytes, then resumed from there: no byte twice. */
	struct download_opts so = { .attempts = 3, .retrying = count_retry };
	free(TAKE_PTR(err));
	retries = 0;
	r = stream_to_reader(cut_resume, sha, &so, 0, &rd, &err);
	tap_is_int(r, 0, "download_stream, the body cut and the server resuming: 0 (%s)", err ? err : "no error");
	tap_ok(rd.total == sizeof(body) && memcmp(rd.buf, body, sizeof(body)) == 0,
	       "... the reader got the body once, whole (%zu bytes)", rd.total);
	tap_is_int(retries, 1, "... after one retry (the server cuts every request without a Range)");

	/* Resumed, then not the pinned content: download_fd would start over; a stream cannot. */
	free(TAKE_PTR(err));
	retries = 0;
	r = stream_to_reader(cut_resume, wrong, &so, 0, &rd, &err);
	tap_is_int(r, -EBADMSG, "download_stream, resumed and another sha256: -EBADMSG, not a second start");
	tap_ok(rd.total == sizeof(body) && memcmp(rd.buf, body, sizeof(body)) == 0,
	       "... the reader got the body once (%zu bytes)", rd.total);
	tap_contains(err, "is pinned", "... the message names both hashes");

	/* Cut, and the server sends it all again for the Range request: what went out stays out. */
	free(TAKE_PTR(err));
	retries = 0;
	r = stream_to_reader(cut_norange, sha, &so, 0, &rd, &err);
	tap_is_int(r, -EIO, "download_stream, the body cut and the server not resuming: -EIO");
	tap_contains(err, "does not resume downloads, and a stream cannot start over", "... saying why");
	tap_ok(rd.total == CUT && memcmp(rd.buf, body, CUT) == 0, "... the reader got the first %d bytes only (%zu)", CUT,
	       rd.total);
	tap_is_int(retries, 1, "... and no attempt after the server's answer");

	/* max_size holds in a stream too: the transfer stops before the cap. */
	struct download_opts capped_o = { .max_size = 100, .attempts = 1 };
	free(TAKE_PTR(err));
	r = stream_to_reader(url, sha, &capped_o, 0, &rd, &err);
	tap_is_int(r, -EFBIG, "download_stream, a body past max_size: -EFBIG");
	tap_ok(rd.total <= 100, "... and at most max_size bytes written (%zu)", rd.total);

	/* The reader goes: the write fails, the download stops, SIGPIPE ignored. */
	free(TAKE_PTR(err));
	r = stream_to_reader(big_url, big_sha, NULL, 4096, &rd, &err);
	tap_is_int(r, -EPIPE, "download_stream, the reader closing after 4096 bytes: -EPIPE");
	tap_contains(err, "cannot write the download of", "... with the write error's message");
	tap_ok(rd.total == 4096 && memcmp(rd.buf, big, sizeof(rd.buf)) == 0,
	       "... the reader got the first 4096 bytes, in order (%zu)", rd.total);

	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	rm_rf(dir);
	return tap_done();
}
