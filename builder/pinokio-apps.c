/* Pinokio launchers baked into the image: the profile's "pinokio_apps", each a directory
 * pinokio/NAME of the data directory (the fleet's own: comfyui, facefusion, ollama) or a path
 * to a profile's own (it has a '/'), copied to /usr/share/pmoves/pinokio/NAME. The pinokio
 * first-boot step copies them into the Pinokio user's home (api/NAME/). */
#include "build.h"
#include "log.h"
#include "profile.h"
#include "stages.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define APPS_DIR "/usr/share/pmoves/pinokio"
#define APP_DEPTH 8 /* as the pinokio step copies them */

/* An app name as the pinokio step takes it: [a-z0-9][a-z0-9._-]{0,63}. */
static bool app_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* Only files and directories, at most APP_DEPTH levels down: what the pinokio step copies into
 * the user's home (it refuses anything else, on every machine). 0, or -EINVAL logged. */
static int app_check(int fd, const char *dir, unsigned depth)
{
	/* A description of its own: a dup() would share the offset the copy's listing starts at. */
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return log_errno(-errno, "cannot read '%s'", dir);
	}
	int r = 0;
	for (struct dirent *e; r == 0 && (errno = 0, e = readdir(d));) {
		struct stat st;
		if (STREQ(e->d_name, ".") || STREQ(e->d_name, ".."))
			continue;
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = log_errno(-errno, "cannot stat '%s/%s'", dir, e->d_name);
		} else if (S_ISDIR(st.st_mode) && depth + 1 < APP_DEPTH) {
			_cleanup_close_ int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			_cleanup_free_ char *path = NULL;
			if (sub < 0 || asprintf(&path, "%s/%s", dir, e->d_name) < 0)
				r = sub < 0 ? log_errno(-errno, "cannot open '%s/%s'", dir, e->d_name) : -ENOMEM;
			else
				r = app_check(sub, path, depth + 1);
		} else if (!S_ISREG(st.st_mode)) {
			log_error("'%s/%s' is not a file or a directory (or is %d levels down): a Pinokio app holds only "
				  "those (the first boot copies them into the user's home)",
				  dir, e->d_name, APP_DEPTH);
			r = -EINVAL;
		}
	}
	if (r == 0 && errno)
		r = log_errno(-errno, "cannot read '%s'", dir);
	closedir(d);
	return r;
}

int stage_pinokio(struct build *b)
{
	json_object *apps;
	if (!json_object_object_get_ex(b->p->json, "pinokio_apps", &apps))
		return 0;
	size_t n = json_object_array_length(apps);
	int r = tree_mkdir_p(b, APPS_DIR, 0755);
	if (r < 0)
		return log_errno(r, "cannot create '%s' in the image", APPS_DIR);
	for (size_t i = 0; i < n; i++) {
		const char *given = json_object_get_string(json_object_array_get_idx(apps, i));
		const char *slash = strrchr(given, '/');
		_cleanup_free_ char *dir = NULL, *to = NULL, *what = NULL;
		const char *name = slash ? slash + 1 : given;
		if (slash ? !(dir = strdup(given)) : asprintf(&dir, "%s/%s", pinokio_dir(), given) < 0)
			return -ENOMEM;
		if (!app_name_ok(name)) {
			log_error("%s: .pinokio_apps[%zu]: '%s' does not end in an app name (a-z, 0-9, '.', '_', '-'; "
				  "starting with a letter or digit; at most 64)",
				  b->p->path, i, given);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			const char *other = json_object_get_string(json_object_array_get_idx(apps, j));
			const char *os = strrchr(other, '/');
			if (STREQ(os ? os + 1 : other, name)) {
				log_error("%s: .pinokio_apps[%zu]: a second app named '%s' (pinokio_apps[%zu])", b->p->path, i,
					  name, j);
				return -EINVAL;
			}
		}
		_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return log_errno(-errno, "%s: .pinokio_apps[%zu]: cannot open the directory '%s'", b->p->path, i, dir);
		/* Pinokio lists a folder of api/ as an app by its launcher. */
		struct stat st;
		if (fstatat(fd, "pinokio.js", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
			log_error("%s: .pinokio_apps[%zu]: '%s' has no pinokio.js (the app's launcher)", b->p->path, i, dir);
			return -EINVAL;
		}
		if ((r = app_check(fd, dir, 0)) < 0)
			return r;
		if (asprintf(&to, APPS_DIR "/%s", name) < 0 || asprintf(&what, "Pinokio app '%s'", dir) < 0)
			return -ENOMEM;
		if ((r = tree_mkdir_p(b, to, 0755)) < 0)
			return log_errno(r, "cannot create '%s' in the image", to);
		if ((r = tree_copy_dir(b, what, fd, to)) < 0)
			return r;
		log_info("pinokio: app '%s' from '%s' into %s", name, dir, to);
	}
	return 0;
}
