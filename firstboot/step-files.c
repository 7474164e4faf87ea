/* files: write files with content, mode and owner. Owners are looked up in the tree's own
 * /etc/passwd and /etc/group (not getpwnam: the tree may not be the running system). */
#include "fb-config.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>

/* ---- "files": [{path, content | content_base64, mode, owner, secret}] ---- */

/* "user:group", each a name or a number. */
#define OWNER_PART "(" FB_USER_NAME_RE "|[0-9]+)"
static const struct fb_format fmt_owner = {
	.name = "owner",
	.message = "'%s' is not an owner ('user:group', names or numbers)",
	.pattern = "^" OWNER_PART ":" OWNER_PART "$",
};

/* After fmt_owner (one ':'): a number is an ID below 2^31 - 1. */
static int valid_owner(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	const char *parts[] = { s, strchr(s, ':') + 1 };
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		size_t n = strcspn(parts[i], ":");
		char buf[40];
		uint64_t id;
		if (strspn(parts[i], "0123456789") != n)
			continue; /* a name */
		if (n >= sizeof(buf))
			return fb_bad(c, fmt_owner.message, FB_SHOW(s));
		memcpy(buf, parts[i], n);
		buf[n] = '\0';
		if (parse_u64(buf, &id) < 0 || id >= INT32_MAX)
			return fb_bad(c, fmt_owner.message, FB_SHOW(s));
	}
	return 0;
}

static int valid_file(struct fb_check *c, json_object *v)
{
	json_object *x;
	bool text = json_object_object_get_ex(v, "content", NULL);
	bool b64 = json_object_object_get_ex(v, "content_base64", NULL);
	if (text == b64)
		return fb_bad(c, text ? "'content' and 'content_base64' are both given: one only"
				      : "'content' or 'content_base64' is required");
	if (json_object_object_get_ex(v, "secret", &x) && json_object_get_boolean(x)) {
		unsigned long mode = 0644;
		if (json_object_object_get_ex(v, "mode", &x))
			mode = strtoul(json_object_get_string(x), NULL, 8);
		else
			mode = 0600;
		if (mode & 077)
			return fb_bad(c, "a secret file must not be readable by group or others (mode \"0600\" or \"0400\")");
	}
	return fb_valid_special_bits(c, v);
}

static int valid_files(struct fb_check *c, json_object *v)
{
	return fb_valid_unique(c, v, "path", "file");
}

static const struct fb_field file_fields[] = {
	{ "path", FB_T_STRING, NULL, fb_valid_path_limits, &fb_fmt_abs_path, FB_REQUIRED | FB_ID, FB_PATH_MAX },
	{ "content", FB_T_STRING, NULL, NULL, NULL, FB_SECRET_IF, FB_CONFIG_MAX },
	{ "content_base64", FB_T_STRING, NULL, fb_valid_base64, NULL, FB_SECRET_IF, FB_CONFIG_MAX },
	{ "mode", FB_T_STRING, NULL, NULL, &fb_fmt_mode, 0, 0 },
	{ "owner", FB_T_STRING, NULL, valid_owner, &fmt_owner, 0, 0 },
	{ "secret", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "special_bits", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field file_elem = { NULL, FB_T_OBJECT, file_fields, valid_file, NULL, FB_SECRET_OBJ, 0 };
static const struct fb_field files_schema = { NULL, FB_T_ARRAY, &file_elem, valid_files, NULL, 0, 0 };

/* ---- the step ---- */

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
	int r = fb_lookup_id("/etc/passwd", owner, un, &uid);
	if (r < 0) {
		*ret_msg = fb_strdupf("'%s': user '%.*s' is not in '/etc/passwd'", f->path, (int)un, owner);
		return r;
	}
	r = fb_lookup_id("/etc/group", owner + un + 1, strlen(owner + un + 1), &gid);
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
	return fb_file_matches(f->path, f->buf, f->len, f->mode, f->uid, f->gid);
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
	char **ret_msg = ud;
	int r = file_is_right(f);
	if (r < 0)
		*ret_msg = fb_strdupf("cannot read '%s': %s", f->path, strerror(-r));
	return r;
}

static int files_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	int r = each_file(section, ret_msg, check_one, ret_msg);
	if (r < 0 && !*ret_msg)
		*ret_msg = fb_strdupf("cannot check the files: %s", strerror(-r));
	return r;
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
	.schema = &files_schema,
	.needs_config = true,
	.required = true,
	.check = files_check,
	.dry_run_apply = true,
	.apply = files_apply,
};
