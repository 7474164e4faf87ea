/* The files a step owns, compared with the disk and written as one set. */
#include "fb-fileset.h"
#include "firstboot.h"
#include "util.h"

void fb_file_set_done(struct fb_file_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->files[i].path);
		free(s->files[i].text);
	}
	free(s->files);
	*s = (struct fb_file_set){ 0 };
}

int fb_file_set_add(struct fb_file_set *s, char *path, char *text, mode_t mode)
{
	int r = 0;
	if (!path || !text)
		r = -ENOMEM;
	else if (path[0] != '/')
		r = -EINVAL;
	else if (fb_file_set_has(s, path))
		r = -EEXIST;
	struct fb_file *f = r == 0 ? reallocarray(s->files, s->n + 1, sizeof(*f)) : NULL;
	if (r == 0 && !f)
		r = -ENOMEM;
	if (r < 0) {
		free(path);
		free(text);
		return r;
	}
	s->files = f;
	s->files[s->n++] = (struct fb_file){ path, text, mode };
	return 0;
}

bool fb_file_set_has(const struct fb_file_set *s, const char *abs)
{
	for (size_t i = 0; i < s->n; i++)
		if (STREQ(s->files[i].path, abs))
			return true;
	return false;
}

int fb_file_set_check(const struct fb_file_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct fb_file *f = &s->files[i];
		int r = fb_file_matches(f->path, f->text, strlen(f->text), f->mode, 0, 0);
		if (r <= 0)
			return r;
	}
	return 1;
}

int fb_file_set_write(const struct fb_file_set *s, char **ret_msg)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct fb_file *f = &s->files[i];
		int r = fb_write(f->path, f->text, strlen(f->text), f->mode, 0, 0);
		if (r < 0) {
			*ret_msg = fb_strdupf("cannot write '%s': %s", f->path, strerror(-r));
			return r;
		}
	}
	return 0;
}
