/* builder/fetch.c: a pinned download into the cache goes through a temp file made with O_EXCL
 * (a symlink planted at its name is not followed), has a size cap before its checksum, and
 * leaves nothing behind when the content is not the pinned one. The server is this test's own,
 * on 127.0.0.1. */
#include "download.h"
#include "fetch.h"
#include "hash.h"
#include "tap.h"
#include "util.h"

#include <dirent.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char body[1000];

/* Serve BODY to every request on a loopback port until killed; its port in *RET_PORT. */
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
		char head[128];
		int hn = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
				  sizeof(body));
		if (write(c, head, (size_t)hn) == hn && write(c, body, sizeof(body)) == (ssize_t)sizeof(body))
			shutdown(c, SHUT_WR);
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

int main(void)
{
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	char sha[65], dir[] = "/tmp/test-fetch-XXXXXX";
	unsigned port = 0;
	if (sha256_hex_of(body, sizeof(body), sha) < 0 || !mkdtemp(dir))
		abort();
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

	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	rm_rf(dir);
	return tap_done();
}
