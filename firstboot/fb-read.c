/* Reading files from a config, a tree or the command line: regular files only, capped. */
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>

const char *fb_file_type(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "a regular file";
	case S_IFDIR:
		return "a directory";
	case S_IFIFO:
		return "a FIFO";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFSOCK:
		return "a socket";
	case S_IFLNK:
		return "a symbolic link";
	}
	return "of an unknown type";
}

static void set_error(char **ret_error, char *msg)
{
	if (ret_error)
		*ret_error = msg;
	else
		free(msg);
}

int fb_fd_regular(int fd, const char *name, char **ret_error)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		set_error(ret_error, fb_strdupf("cannot read '%s': %s", name, strerror(-r)));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		set_error(ret_error, fb_strdupf("'%s' is not a regular file (%s)", name, fb_file_type(st.st_mode)));
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	/* Opened O_NONBLOCK so that a FIFO's open could not wait; a regular file reads the same
	 * either way, but no later read should see EAGAIN. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int r = -errno;
		set_error(ret_error, fb_strdupf("cannot read '%s': %s", name, strerror(-r)));
		return r;
	}
	return 0;
}

int fb_read_fd(int fd, const char *name, size_t max, char **ret_buf, size_t *ret_len, char **ret_error)
{
	int r = fb_fd_regular(fd, name, ret_error);
	if (r < 0)
		return r;
	/* Not refused by its size alone: a sysfs attribute says 4096 whatever it holds, /proc
	 * files say 0. read_fd() stops one byte past MAX: a sparse file of a terabyte costs a
	 * read of MAX bytes. */
	r = read_fd(fd, max, ret_buf, ret_len);
	if (r == -EFBIG)
		set_error(ret_error, max % (1u << 20) == 0 ? fb_strdupf("'%s' is larger than %zu MiB", name, max >> 20)
							 : fb_strdupf("'%s' is larger than %zu bytes", name, max));
	else if (r < 0)
		set_error(ret_error, fb_strdupf("cannot read '%s': %s", name, strerror(-r)));
	return r;
}

int fb_read_file(const char *abs, size_t max, char **ret_buf, size_t *ret_len, char **ret_error)
{
	_cleanup_close_ int fd = fb_open(abs, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0) {
		set_error(ret_error, fb_strdupf("cannot read '%s': %s", abs, strerror(-fd)));
		return fd;
	}
	return fb_read_fd(fd, abs, max, ret_buf, ret_len, ret_error);
}

int fb_read_host(const char *path, size_t max, char **ret_buf, size_t *ret_len, char **ret_error)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		set_error(ret_error, fb_strdupf("cannot read '%s': %s", path, strerror(-r)));
		return r;
	}
	return fb_read_fd(fd, path, max, ret_buf, ret_len, ret_error);
}
