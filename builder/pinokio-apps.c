/* Pinokio launchers baked into the image: the profile's "pinokio_apps", each a directory
 * pinokio/NAME of the data directory (the fleet's own: comfyui, facefusion, ollama) or a path
 * to a profile's own (it has a '/'), copied to /usr/share/pmoves/pinokio/NAME. The pinokio
 * first-boot step copies them into the Pinokio user's home (api/NAME/). */
#include "build.h"
#include "log.h"
#include "profile.h"
#include "stages.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#define APPS_DIR "/usr/share/pmoves/pinokio"

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
		if (!valid_name(name, 64) || STREQ(name, "..")) {
			log_error("%s: .pinokio_apps[%zu]: '%s' does not end in an app name (letters, digits, '.', '_', '-')",
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
