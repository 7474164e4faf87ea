/* A set of whole files a step owns: each path with its content and mode, root's. A step makes
 * the set from its config, check compares it with what is on disk, apply writes it. */
#ifndef PMOVES_FB_FILESET_H
#define PMOVES_FB_FILESET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct fb_file {
	char *path; /* absolute, as on the target */
	char *text;
	mode_t mode;
};

struct fb_file_set {
	struct fb_file *files;
	size_t n;
};

/* _cleanup_(fb_file_set_done) struct fb_file_set s = { 0 }; */
void fb_file_set_done(struct fb_file_set *s);
/* Add PATH (absolute) with TEXT and MODE. Takes both: they are freed on failure, and either
 * being NULL (a failed fb_strdupf()) is -ENOMEM. A path already in the set is -EEXIST. */
int fb_file_set_add(struct fb_file_set *s, char *path, char *text, mode_t mode);
/* ABS is one of the set's paths. */
bool fb_file_set_has(const struct fb_file_set *s, const char *abs);
/* 1: every file is on disk with its content, mode and owner root:root; 0: not; -errno. */
int fb_file_set_check(const struct fb_file_set *s);
/* Write every file in order (fb_write: atomic, root:root). 0, or -errno with *ret_msg
 * "cannot write 'PATH': why" for the first that could not be written. */
int fb_file_set_write(const struct fb_file_set *s, char **ret_msg);

#endif
