/* users: groups and users, password hash, SSH authorized keys, sudo.
 *
 * The account files (/etc/passwd, /etc/shadow, /etc/group, /etc/gshadow) are edited here
 * directly rather than with useradd/usermod --root through the runner, because:
 *   - the password hash is a secret and must never be in a command's argv (useradd -p puts
 *     it there, visible in /proc to every user of the machine);
 *   - `useradd --root` chroots into the tree and needs the tree's own PAM and login.defs and
 *     root privileges: it behaves differently on a --root tree and on the running system,
 *     while this code behaves the same on both;
 *   - each file is replaced atomically (fb_write: temp, fsync, rename), in an order chosen
 *     so that a power cut at any point leaves consistent files (see users_apply).
 * Locking as shadow-utils does (/etc/.pwd.lock) is not needed: the unit runs before logins
 * and before anything else edits these files.
 *
 * A new user gets a group of its own name, UID/GID from 1000 up, /home/NAME (0700) with a
 * copy of /etc/skel, the password hash (or "*": no password, SSH keys still work; "!" would
 * lock the account for sshd without PAM). An existing user keeps its password, shell and
 * home; only its groups and keys are brought in line. Keys are added to
 * ~/.ssh/authorized_keys (lines already there are kept). "sudo": true without /usr/bin/sudo in
 * the tree: the accounts are made all the same, and the step fails saying sudo is not
 * installed (group sudo alone gives nothing). */
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#define DB_MAX (16u << 20)
#define ID_MIN 1000u
#define ID_MAX 59999u
#define SKEL_DEPTH 8
#define SUDO "/usr/bin/sudo"

/* ---- "users": [{name, groups, shell, password_hash, ssh_authorized_keys, sudo}] ---- */

static const struct fb_format fmt_shell = {
	.name = "shell",
	.message = "'%s' is not a valid shell (no ':' or spaces)",
	.forbid = "[: ]",
	.also = &fb_fmt_abs_path,
};

/* Secret: the message never shows the value. */
#define CRYPT_CHAR "[A-Za-z0-9./=,+-]"
static const struct fb_format fmt_crypt = {
	.name = "crypt_hash",
	.message = "not a crypt(3) hash such as '$y$...' from 'mkpasswd -m yescrypt' (clear-text passwords are refused; "
		   "value not shown)",
	.pattern = "^[$]" CRYPT_CHAR "*[$]" CRYPT_CHAR "*[$][A-Za-z0-9./$=,+-]*$",
	.min = 10,
	.max = 512,
};

static const struct fb_format fmt_ssh_key_line = {
	.name = "ssh_key_line",
	.message = "an SSH key is one line without control characters",
	.pattern = "^[^\x01-\x1f\x7f]*$",
};

/* Options may come first; the key is "TYPE BASE64 [comment]": a word starting with a key
 * type, blanks, then a word of at least 16 base64 characters. */
static const struct fb_format fmt_ssh_key = {
	.name = "ssh_key",
	.message = "'%s' is not an SSH public key line ('ssh-ed25519 AAAA... comment')",
	.pattern = "^([^ ]* )*(ssh-|ecdsa-sha2-|sk-)[^ ]* +[A-Za-z0-9+/=]{16,}( [^ ]*)*$",
	.also = &fmt_ssh_key_line,
};

static int valid_users(struct fb_check *c, json_object *v)
{
	return fb_valid_unique(c, v, "name", "user");
}

static const struct fb_field user_name_elem = { NULL, FB_T_STRING, NULL, NULL, &fb_fmt_user_name, 0, 0 };
static const struct fb_field ssh_key_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_ssh_key, 0, 16384 };
static const struct fb_field user_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fb_fmt_user_name, FB_REQUIRED | FB_ID, 0 },
	{ "groups", FB_T_ARRAY, &user_name_elem, NULL, NULL, 0, 64 },
	{ "shell", FB_T_STRING, NULL, fb_valid_path_limits, &fmt_shell, 0, FB_PATH_MAX },
	{ "password_hash", FB_T_STRING, NULL, NULL, &fmt_crypt, FB_SECRET, 0 },
	{ "ssh_authorized_keys", FB_T_ARRAY, &ssh_key_elem, NULL, NULL, 0, 256 },
	{ "sudo", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field user_elem = { NULL, FB_T_OBJECT, user_fields, NULL, NULL, 0, 0 };
static const struct fb_field users_schema = { NULL, FB_T_ARRAY, &user_elem, valid_users, NULL, 0, 256 };

/* An account file as lines, without their newlines. */
struct db {
	const char *path;
	mode_t mode;
	bool secret; /* shadow files: 0640 root:shadow */
	char **lines;
	bool changed;
};

static void db_done(struct db *d)
{
	for (char **l = d->lines; d->secret && l && *l; l++)
		explicit_bzero(*l, strlen(*l));
	strv_free(d->lines);
	d->lines = NULL;
}

static int db_load(struct db *d)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = fb_read(d->path, DB_MAX, &text, &len);
	if (r == -ENOENT)
		return 0; /* a tree without shadow files gets them */
	if (r < 0)
		return r;
	for (char *p = text; r == 0 && *p;) {
		size_t n = strcspn(p, "\n");
		char c = p[n];
		p[n] = '\0';
		if (n > 0)
			r = strv_push(&d->lines, p);
		p += n + (c == '\n');
	}
	if (d->secret)
		explicit_bzero(text, len);
	return r;
}

/* The line of NAME (first field), or NULL. */
static char **db_find(struct db *d, const char *name)
{
	size_t n = strlen(name);
	for (char **l = d->lines; l && *l; l++)
		if (!strncmp(*l, name, n) && (*l)[n] == ':')
			return l;
	return NULL;
}

/* Field I (0-based) of LINE: pointer and length. */
static const char *field(const char *line, unsigned i, size_t *ret_len)
{
	for (; i > 0; i--) {
		line = strchr(line, ':');
		if (!line)
			return NULL;
		line++;
	}
	*ret_len = strcspn(line, ":");
	return line;
}

static int field_id(const char *line, unsigned i, unsigned *ret)
{
	size_t n;
	const char *f = field(line, i, &n);
	char buf[16];
	uint64_t v;
	if (!f || n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, f, n);
	buf[n] = '\0';
	if (parse_u64(buf, &v) < 0 || v > INT32_MAX)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static bool id_used(struct db *d, unsigned id)
{
	for (char **l = d->lines; l && *l; l++) {
		unsigned v;
		if (field_id(*l, 2, &v) == 0 && v == id)
			return true;
	}
	return false;
}

static int db_replace(struct db *d, char **slot, char *line)
{
	if (!line)
		return -ENOMEM;
	if (d->secret)
		explicit_bzero(*slot, strlen(*slot));
	free(*slot);
	*slot = line;
	d->changed = true;
	return 0;
}

static int db_add(struct db *d, char *line)
{
	if (!line)
		return -ENOMEM;
	int r = strv_push(&d->lines, line);
	if (d->secret)
		explicit_bzero(line, strlen(line));
	free(line);
	d->changed = r == 0 || d->changed;
	return r;
}

static int db_save(struct db *d, gid_t gid)
{
	if (!d->changed)
		return 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	for (char **l = d->lines; l && *l; l++)
		fprintf(f, "%s\n", *l);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	int r = fb_write(d->path, buf, len, d->mode, 0, d->secret ? gid : 0);
	if (d->secret)
		explicit_bzero(buf, len);
	free(buf);
	if (r == 0)
		d->changed = false;
	return r;
}

/* Is NAME listed in the members field (FIELD) of group line LINE? */
static bool member_of(const char *line, unsigned fi, const char *name)
{
	size_t n, k = strlen(name);
	const char *m = field(line, fi, &n);
	for (const char *p = m; p && p < m + n;) {
		size_t w = strcspn(p, ",:");
		if (w == k && !strncmp(p, name, k))
			return true;
		p += w + 1;
	}
	return false;
}

/* Add NAME to the members field FI (the last one) of *SLOT. */
static int add_member(struct db *d, char **slot, unsigned fi, const char *name)
{
	if (member_of(*slot, fi, name))
		return 0;
	size_t n;
	const char *m = field(*slot, fi, &n);
	if (!m)
		return -EINVAL;
	return db_replace(d, slot, fb_strdupf("%s%s%s", *slot, n ? "," : "", name));
}

struct dbs {
	struct db passwd, shadow, group, gshadow;
	gid_t shadow_gid;
};

static void dbs_done(struct dbs *s)
{
	db_done(&s->passwd);
	db_done(&s->shadow);
	db_done(&s->group);
	db_done(&s->gshadow);
}

static int dbs_load(struct dbs *s)
{
	*s = (struct dbs){
		.passwd = { "/etc/passwd", 0644, false, NULL, false },
		.shadow = { "/etc/shadow", 0640, true, NULL, false },
		.group = { "/etc/group", 0644, false, NULL, false },
		.gshadow = { "/etc/gshadow", 0640, true, NULL, false },
	};
	int r;
	if ((r = db_load(&s->passwd)) < 0 || (r = db_load(&s->shadow)) < 0 || (r = db_load(&s->group)) < 0 ||
	    (r = db_load(&s->gshadow)) < 0)
		return r;
	char **g = db_find(&s->group, "shadow");
	unsigned gid = 0;
	if (g && field_id(*g, 2, &gid) == 0)
		s->shadow_gid = gid;
	return 0;
}

/* The groups USER must be in: its "groups" and "sudo" when asked. */
static int wanted_groups(json_object *user, char ***ret)
{
	_cleanup_strv_ char **v = NULL;
	json_object *groups, *sudo;
	int r = 0;
	if (json_object_object_get_ex(user, "groups", &groups))
		for (size_t i = 0; r == 0 && i < json_object_array_length(groups); i++)
			r = strv_push(&v, json_object_get_string(json_object_array_get_idx(groups, i)));
	if (r == 0 && json_object_object_get_ex(user, "sudo", &sudo) && json_object_get_boolean(sudo))
		r = strv_push(&v, "sudo");
	if (r < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

/* ---- home, skel, keys ---- */

/* Create directory NAME in DFD (mode, owner), or fix an existing one's owner when FIX. */
static int mkdir_owned(int dfd, const char *name, mode_t mode, uid_t uid, gid_t gid, bool fix, int *ret_fd)
{
	bool made = mkdirat(dfd, name, mode) == 0;
	if (!made && errno != EEXIST)
		return -errno;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if ((made || fix) && (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0)) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int copy_file(int sfd, int dfd, const char *name, uid_t uid, gid_t gid)
{
	/* What is opened is what is copied: checked on the fd, so a name swapped for a FIFO or a
	 * device after the directory was read is skipped, never waited on or read. */
	_cleanup_close_ int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (in < 0)
		return errno == ELOOP ? 0 : -errno;
	if (fstat(in, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	_cleanup_close_ int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return errno == EEXIST ? 0 : -errno;
	int r = copy_fd_range(in, 0, out, 0, (uint64_t)st.st_size);
	if (r == 0 && (fchown(out, uid, gid) < 0 || fchmod(out, st.st_mode & 07777) < 0))
		r = -errno;
	return r;
}

/* /etc/skel into the new home: regular files, directories and symlinks, owned by the user. */
static int copy_tree(int sfd, int dfd, uid_t uid, gid_t gid, int depth)
{
	if (depth > SKEL_DEPTH)
		return 0;
	int dup_fd = dup(sfd);
	if (dup_fd < 0)
		return -errno;
	DIR *dir = fdopendir(dup_fd);
	if (!dir) {
		close(dup_fd);
		return -errno;
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(dir))) {
		struct stat st;
		if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
			continue;
		if (fstatat(sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			break;
		}
		if (S_ISREG(st.st_mode)) {
			r = copy_file(sfd, dfd, de->d_name, uid, gid);
		} else if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = openat(sfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			_cleanup_close_ int dsub = -1;
			if (sub < 0)
				r = -errno;
			else if ((r = mkdir_owned(dfd, de->d_name, st.st_mode & 07777, uid, gid, false, &dsub)) == 0)
				r = copy_tree(sub, dsub, uid, gid, depth + 1);
		} else if (S_ISLNK(st.st_mode) && st.st_size > 0 && st.st_size < 4096) {
			char target[4096];
			ssize_t n = readlinkat(sfd, de->d_name, target, sizeof(target) - 1);
			if (n < 0) {
				r = -errno;
				break;
			}
			target[n] = '\0';
			if (symlinkat(target, dfd, de->d_name) < 0 && errno != EEXIST)
				r = -errno;
			else if (fchownat(dfd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
				r = -errno;
		}
	}
	closedir(dir);
	return r;
}

/* HOME's parent directories (root's, 0755) and HOME itself (the user's, 0700, with /etc/skel
 * when it is new). Returns HOME's fd. */
static int make_home(const char *home, uid_t uid, gid_t gid, int *ret_fd)
{
	_cleanup_free_ char *parent = strdup(home);
	if (!parent)
		return -ENOMEM;
	char *slash = strrchr(parent, '/');
	if (!slash || !slash[1] || home[0] != '/')
		return -EINVAL;
	const char *base = home + (slash - parent) + 1;
	*slash = '\0';
	_cleanup_close_ int pfd = fb_open("/", O_RDONLY | O_DIRECTORY, 0);
	if (pfd < 0)
		return pfd;
	/* Parents, one component at a time, inside the root. */
	for (char *p = parent + 1; *parent && p && *p;) {
		char *next = strchr(p, '/');
		if (next)
			*next = '\0';
		int fd = -1;
		int r = mkdir_owned(pfd, p, 0755, 0, 0, false, &fd);
		if (r < 0)
			return r;
		close(pfd);
		pfd = fd;
		p = next ? next + 1 : NULL;
	}
	struct stat st;
	bool is_new = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0;
	int fd = -1;
	int r = mkdir_owned(pfd, base, 0700, uid, gid, false, &fd);
	if (r < 0)
		return r;
	if (is_new) {
		_cleanup_close_ int skel = fb_open("/etc/skel", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (skel >= 0 && (r = copy_tree(skel, fd, uid, gid, 0)) < 0) {
			close(fd);
			return r;
		}
	}
	*ret_fd = fd;
	return 0;
}

/* The authorized_keys text with every key of KEYS present (OLD's lines kept), or NULL when
 * OLD already has them all. *RET_MISSING counts the keys added. */
static int keys_text(const char *old, json_object *keys, char **ret, unsigned *ret_missing)
{
	char *buf = NULL;
	size_t len = 0;
	unsigned missing = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	if (old && *old)
		fprintf(f, "%s%s", old, old[strlen(old) - 1] == '\n' ? "" : "\n");
	for (size_t i = 0; i < json_object_array_length(keys); i++) {
		const char *k = json_object_get_string(json_object_array_get_idx(keys, i));
		bool have = false;
		for (const char *p = old; p && *p && !have;) {
			size_t n = strcspn(p, "\n");
			have = n == strlen(k) && !strncmp(p, k, n);
			p += n + (p[n] == '\n');
		}
		if (!have) {
			fprintf(f, "%s\n", k);
			missing++;
		}
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret_missing = missing;
	*ret = buf;
	return 0;
}

/* ---- per user ---- */

struct account {
	const char *name;
	uid_t uid;
	gid_t gid;
	char *home;
};

static int account_of(struct dbs *s, const char *name, struct account *ret)
{
	char **l = db_find(&s->passwd, name);
	unsigned uid, gid;
	size_t n;
	const char *home;
	if (!l)
		return -ESRCH;
	if (field_id(*l, 2, &uid) < 0 || field_id(*l, 3, &gid) < 0 || !(home = field(*l, 5, &n)) || n == 0 || home[0] != '/')
		return -EBADMSG;
	ret->name = name;
	ret->uid = uid;
	ret->gid = gid;
	ret->home = strndup(home, n);
	return ret->home ? 0 : -ENOMEM;
}

/* 1: USER is there as configured (in passwd and shadow, in its groups, home made, keys in). */
static int user_ok(struct dbs *s, json_object *user)
{
	const char *name = fb_json_str(user, "name", NULL);
	struct account a;
	int r = account_of(s, name, &a);
	if (r == -ESRCH)
		return 0;
	if (r < 0)
		return r;
	_cleanup_free_ char *home = a.home;
	if (!db_find(&s->shadow, name))
		return 0;
	_cleanup_strv_ char **groups = NULL;
	if ((r = wanted_groups(user, &groups)) < 0)
		return r;
	for (char **g = groups; g && *g; g++) {
		char **gl = db_find(&s->group, *g), **gs = db_find(&s->gshadow, *g);
		if (!gl || !member_of(*gl, 3, name) || (s->gshadow.lines && (!gs || !member_of(*gs, 3, name))))
			return 0;
	}
	if (fb_exists(home) <= 0)
		return 0;
	json_object *keys;
	if (!json_object_object_get_ex(user, "ssh_authorized_keys", &keys) || json_object_array_length(keys) == 0)
		return 1;
	_cleanup_free_ char *path = fb_strdupf("%s/.ssh/authorized_keys", home), *old = NULL, *want = NULL;
	if (!path)
		return -ENOMEM;
	r = fb_read(path, 1 << 20, &old, NULL);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	if (r < 0)
		return r;
	unsigned missing;
	if ((r = keys_text(old, keys, &want, &missing)) < 0)
		return r;
	_cleanup_close_ int fd = fb_open(path, O_RDONLY | O_NOFOLLOW, 0);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	return missing == 0 && st.st_uid == a.uid && (st.st_mode & 077) == 0;
}

static unsigned free_id(struct db *a, struct db *b, unsigned prefer)
{
	if (prefer >= ID_MIN && prefer <= ID_MAX && !id_used(a, prefer) && (!b || !id_used(b, prefer)))
		return prefer;
	for (unsigned id = ID_MIN; id <= ID_MAX; id++)
		if (!id_used(a, id) && (!b || !id_used(b, id)))
			return id;
	return 0;
}

/* GROUP in group and gshadow (created when missing, with a free GID); MEMBER added when set. */
static int ensure_group(struct dbs *s, const char *group, const char *member, unsigned prefer_gid, unsigned *ret_gid)
{
	char **gl = db_find(&s->group, group);
	unsigned gid = 0;
	int r;
	if (!gl) {
		gid = free_id(&s->group, NULL, prefer_gid);
		if (gid == 0)
			return -ENOSPC;
		if ((r = db_add(&s->group, fb_strdupf("%s:x:%u:%s", group, gid, member ? member : ""))) < 0)
			return r;
	} else {
		if ((r = field_id(*gl, 2, &gid)) < 0)
			return r;
		if (member && (r = add_member(&s->group, gl, 3, member)) < 0)
			return r;
	}
	char **gs = db_find(&s->gshadow, group);
	if (!gs)
		r = db_add(&s->gshadow, fb_strdupf("%s:!::%s", group, member ? member : ""));
	else if (member)
		r = add_member(&s->gshadow, gs, 3, member);
	if (r == 0 && ret_gid)
		*ret_gid = gid;
	return r;
}

/* Bring one user in line. *RET_CREATED: it was not in passwd. */
/* NAME into each group the config asks for (made when missing); group and gshadow saved. */
static int join_groups(struct dbs *s, json_object *user, const char *name)
{
	_cleanup_strv_ char **groups = NULL;
	int r = wanted_groups(user, &groups);
	if (r < 0)
		return r;
	for (char **g = groups; g && *g; g++)
		if ((r = ensure_group(s, *g, name, 0, NULL)) < 0)
			return r;
	if ((r = db_save(&s->group, 0)) < 0 || (r = db_save(&s->gshadow, s->shadow_gid)) < 0)
		return r;
	return 0;
}

static int user_apply(struct dbs *s, json_object *user, bool *ret_created, char **ret_msg)
{
	const char *name = fb_json_str(user, "name", NULL);
	const char *shell = fb_json_str(user, "shell", NULL);
	const char *hash = fb_json_str(user, "password_hash", NULL);
	bool created = !db_find(&s->passwd, name);
	int r;

	/* Group files first, then shadow, passwd last: a user in passwd has everything else.
	 * A cut before passwd is written leaves at most an unused group and shadow line, which
	 * the next run finds and keeps. */
	if (created) {
		unsigned uid = free_id(&s->passwd, NULL, 0), gid;
		if (uid == 0)
			return -ENOSPC;
		/* Its own group: made with GID = UID when free, or kept from a cut run. */
		if ((r = ensure_group(s, name, NULL, uid, &gid)) < 0)
			return r;
		if ((r = join_groups(s, user, name)) < 0)
			return r;
		if (!db_find(&s->shadow, name)) {
			long days = (long)(time(NULL) / 86400);
			if ((r = db_add(&s->shadow, fb_strdupf("%s:%s:%ld:0:99999:7:::", name, hash ? hash : "*", days))) < 0 ||
			    (r = db_save(&s->shadow, s->shadow_gid)) < 0)
				return r;
		}
		if ((r = db_add(&s->passwd, fb_strdupf("%s:x:%u:%u::/home/%s:%s", name, uid, gid, name,
						      shell ? shell : "/bin/bash"))) < 0 ||
		    (r = db_save(&s->passwd, 0)) < 0)
			return r;
	} else {
		if ((r = join_groups(s, user, name)) < 0)
			return r;
		if (!db_find(&s->shadow, name)) {
			/* In passwd but not shadow (made by hand, or by an older tool): a locked entry,
			 * or the configured hash. */
			if ((r = db_add(&s->shadow, fb_strdupf("%s:%s:%ld:0:99999:7:::", name, hash ? hash : "*",
							      (long)(time(NULL) / 86400)))) < 0 ||
			    (r = db_save(&s->shadow, s->shadow_gid)) < 0)
				return r;
		}
	}

	struct account a;
	if ((r = account_of(s, name, &a)) < 0)
		return r;
	_cleanup_free_ char *home = a.home;
	_cleanup_close_ int hfd = -1, sfd = -1;
	if ((r = make_home(home, a.uid, a.gid, &hfd)) < 0) {
		*ret_msg = fb_strdupf("cannot make the home directory '%s' of '%s': %s", home, name, strerror(-r));
		return r;
	}
	json_object *keys;
	if (json_object_object_get_ex(user, "ssh_authorized_keys", &keys) && json_object_array_length(keys) > 0) {
		_cleanup_free_ char *path = fb_strdupf("%s/.ssh/authorized_keys", home), *old = NULL, *text = NULL;
		if (!path)
			return -ENOMEM;
		if ((r = mkdir_owned(hfd, ".ssh", 0700, a.uid, a.gid, true, &sfd)) < 0) {
			*ret_msg = fb_strdupf("cannot make '%s/.ssh': %s", home, strerror(-r));
			return r;
		}
		r = fb_read(path, 1 << 20, &old, NULL);
		if (r < 0 && r != -ENOENT)
			return r;
		unsigned missing;
		if ((r = keys_text(old, keys, &text, &missing)) < 0 ||
		    (r = fb_write(path, text, strlen(text), 0600, a.uid, a.gid)) < 0) {
			*ret_msg = fb_strdupf("cannot write '%s': %s", path, strerror(-r));
			return r;
		}
	}
	*ret_created = created;
	return 0;
}

/* *RET_USER: when sudo is not installed, the first user asking for "sudo": true (group sudo
 * without the program gives nothing, and the step must not say ok); else NULL. *RET_COUNT:
 * how many ask. */
static int sudo_missing(json_object *section, const char **ret_user, size_t *ret_count)
{
	const char *first = NULL;
	size_t n = 0;
	json_object *v;
	for (size_t i = 0; i < json_object_array_length(section); i++) {
		json_object *user = json_object_array_get_idx(section, i);
		if (json_object_object_get_ex(user, "sudo", &v) && json_object_get_boolean(v) && n++ == 0)
			first = fb_json_str(user, "name", "?");
	}
	int r = n ? fb_exists(SUDO) : 1;
	if (r < 0)
		return r;
	*ret_user = r ? NULL : first;
	*ret_count = n;
	return 0;
}

static int users_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_(dbs_done) struct dbs s;
	int r = dbs_load(&s);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read the account files: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < json_object_array_length(section); i++) {
		r = user_ok(&s, json_object_array_get_idx(section, i));
		if (r <= 0)
			return r < 0 ? (*ret_msg = fb_strdupf("cannot check the users: %s", strerror(-r)), r) : 0;
	}
	const char *who;
	size_t n;
	if ((r = sudo_missing(section, &who, &n)) < 0) {
		*ret_msg = fb_strdupf("cannot tell whether '%s' exists: %s", SUDO, strerror(-r));
		return r;
	}
	return who ? 0 : 1; /* apply says why */
}

static enum fb_result users_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_(dbs_done) struct dbs s;
	int r = dbs_load(&s);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read the account files: %s", strerror(-r));
		return FB_FAILED;
	}
	unsigned created = 0, updated = 0;
	for (size_t i = 0; i < json_object_array_length(section); i++) {
		json_object *user = json_object_array_get_idx(section, i);
		bool made = false;
		r = user_ok(&s, user);
		if (r > 0)
			continue;
		if (r == 0)
			r = user_apply(&s, user, &made, ret_msg);
		if (r < 0) {
			if (!*ret_msg)
				*ret_msg = fb_strdupf("cannot set up user '%s': %s", fb_json_str(user, "name", "?"), strerror(-r));
			return FB_FAILED;
		}
		made ? created++ : updated++;
	}
	const char *who;
	size_t n;
	if ((r = sudo_missing(section, &who, &n)) < 0) {
		*ret_msg = fb_strdupf("cannot tell whether '%s' exists: %s", SUDO, strerror(-r));
		return FB_FAILED;
	}
	if (who) {
		/* The accounts are made (logins and keys work); what was asked for is not there. */
		*ret_msg = fb_strdupf("sudo is not installed ('%s'): '%s'%s asked for sudo and got only the group 'sudo' "
				      "(add the package 'sudo' to the image); %u created, %u updated",
				      SUDO, who, n > 1 ? " and others" : "", created, updated);
		return FB_FAILED;
	}
	*ret_msg = fb_strdupf("%u created, %u updated", created, updated);
	return FB_OK;
}

const struct fb_step step_users = {
	.name = "users",
	.config_key = "users",
	.schema = &users_schema,
	.needs_config = true,
	.required = false,
	.check = users_check,
	.apply = users_apply,
};
