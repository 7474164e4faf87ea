/* files: write files with content, mode and owner. Owners are looked up in the tree's own
 * /etc/passwd and /etc/group (not getpwnam: the tree may not be the running system). */
#include "fb-config.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>

struct file {
	const char *path;
	uint8_t *buf;
	size_t len;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

static void file_done(struct file *f)
{
	if (f->buf)
		explicit_bzero(f->buf, f->len);
	free(f->buf);
	f->buf = NULL;
}

/* NAME (or a number) in the passwd or group file DB: field 3 of its line. */
static int lookup_id(const char *db, const char *name, size_t n, unsigned *ret)
{
	char buf[40];
	uint64_t id;
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, name, n);
	buf[n] = '\0';
	if (parse_u64(buf, &id) == 0 && id < INT32_MAX) {
		*ret = (unsigned)id;
		return 0;
	}
	_cleanup_free_ char *text = NULL;
	int r = fb_read(db, 16u << 20, &text, NULL);
	if (r < 0)
		return r;
	for (char *line = text; *line;) {
		size_t len = strcspn(line, "\n");
		char *end = line + len;
		char *f3 = line;
		/* name:x:ID: */
		if (!strncmp(line, buf, n) && line[n] == ':' && (f3 = memchr(line + n + 1, ':', (size_t)(end - line - n - 1)))) {
			char *e;
			unsigned long v = strtoul(f3 + 1, &e, 10);
			if (e > f3 + 1 && *e == ':' && v < INT32_MAX) {
				*ret = (unsigned)v;
				return 0;
			}
		}
		line = *end ? end + 1 : end;
	}
	return -ESRCH;
}

static int file_load(json_object *o, struct file *f, char **ret_msg)
{
	json_object *v;
	bool secret = json_object_object_get_ex(o, "secret", &v) && json_object_get_boolean(v);
	*f = (struct file){ .mode = secret ? 0600 : 0644 };
	json_object_object_get_ex(o, "path", &v);
	f->path = json_object_get_string(v);
	if (json_object_object_get_ex(o, "content_base64", &v)) {
		if (fb_base64_decode(json_object_get_string(v), &f->buf, &f->len) < 0)
			return -EINVAL;
	} else if (json_object_object_get_ex(o, "content", &v)) {
		f->len = strlen(json_object_get_string(v));
		if (!(f->buf = (uint8_t *)strdup(json_object_get_string(v))))
			return -ENOMEM;
	}
	if (json_object_object_get_ex(o, "mode", &v))
		f->mode = (mode_t)strtoul(json_object_get_string(v), NULL, 8);
	const char *owner = json_object_object_get_ex(o, "owner", &v) ? json_object_get_string(v) : "root:root";
	size_t un = strcspn(owner, ":");
	unsigned uid, gid;
	int r = lookup_id("/etc/passwd", owner, un, &uid);
	if (r < 0) {
		*ret_msg = fb_strdupf("'%s': user '%.*s' is not in '/etc/passwd'", f->path, (int)un, owner);
		return r;
	}
	r = lookup_id("/etc/group", owner + un + 1, strlen(owner + un + 1), &gid);
	if (r < 0) {
		*ret_msg = fb_strdupf("'%s': group '%s' is not in '/etc/group'", f->path, owner + un + 1);
		return r;
	}
	f->uid = uid;
	f->gid = gid;
	return 0;
}

/* 1: the file is there with this content, mode and owner. */
static int file_is_right(const struct file *f)
{
	_cleanup_close_ int fd = fb_open(f->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
	struct stat st;
	if (fd == -ENOENT || fd == -ELOOP)
		return 0;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != f->mode || st.st_uid != f->uid || st.st_gid != f->gid ||
	    (uint64_t)st.st_size != f->len)
		return 0;
	return fb_file_is(f->path, f->buf, f->len);
}

/* Each entry, loaded: CB(file) returns <0 to stop. */
static int each_file(json_object *section, char **ret_msg, int (*cb)(struct file *f, void *ud), void *ud)
{
	size_t n = json_object_array_length(section);
	for (size_t i = 0; i < n; i++) {
		struct file f;
		int r = file_load(json_object_array_get_idx(section, i), &f, ret_msg);
		if (r >= 0)
			r = cb(&f, ud);
		file_done(&f);
		if (r < 0 || r == 0)
			return r;
	}
	return 1;
}

static int check_one(struct file *f, void *ud)
{
	(void)ud;
	return file_is_right(f);
}

static int files_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	return each_file(section, ret_msg, check_one, NULL);
}

struct apply_ud {
	unsigned written;
	char **ret_msg;
};

static int apply_one(struct file *f, void *ud)
{
	struct apply_ud *a = ud;
	int r = file_is_right(f);
	if (r > 0)
		return 1;
	if (r == 0)
		r = fb_write(f->path, f->buf, f->len, f->mode, f->uid, f->gid);
	if (r < 0) {
		*a->ret_msg = fb_strdupf("cannot write '%s': %s", f->path, strerror(-r));
		return r;
	}
	a->written++;
	return 1;
}

static enum fb_result files_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	struct apply_ud a = { .ret_msg = ret_msg };
	if (each_file(section, ret_msg, apply_one, &a) < 0)
		return FB_FAILED;
	*ret_msg = fb_strdupf("%u of %zu files written", a.written, json_object_array_length(section));
	return FB_OK;
}

const struct fb_step step_files = {
	.name = "files",
	.config_key = "files",
	.needs_config = true,
	.required = true,
	.check = files_check,
	.dry_run_apply = true,
	.apply = files_apply,
};
