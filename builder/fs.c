/* The filesystems stage: each partition's filesystem, made by its record (fs-<name>.c). */
#include "build.h"
#include "image-hash.h"
#include "log.h"
#include "stages.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <search.h>
#include <sys/stat.h>
#include <sys/xattr.h>

int stage_filesystems(struct build *b)
{
	for (size_t i = 0; i < b->plan.n; i++) {
		struct plan_part *pp = &b->plan.parts[i];
		if (pp->fs) { /* without one ("none") the partition stays empty */
			double t0 = now_seconds();
			int r = pp->fs->make(b, pp);
			if (r < 0)
				return log_errno(r, "cannot make the %s filesystem of partition '%s'", pp->fs->name,
						 pp->spec->name);
			log_info("filesystems: %s on '%s' in %.2f s", pp->fs->name, pp->spec->name, now_seconds() - t0);
		}
		image_hash_part_done(b, i);
	}
	return 0;
}

/* ---- measuring a tree for "size": "auto" ---- */

#define MEASURE_MAX_DEPTH 256

struct measure {
	const struct fs_rules *rules;
	struct fs_usage u;
	void *links; /* tsearch() tree of the inode numbers of hard-linked files seen */
};

static int cmp_ino(const void *a, const void *b)
{
	ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;
	return x < y ? -1 : x > y;
}

static int add_u64(uint64_t *acc, uint64_t v)
{
	return __builtin_add_overflow(*acc, v, acc) ? -EFBIG : 0;
}

/* A hard-linked file already counted: its other names take a directory entry only. */
static int seen_before(struct measure *m, const struct stat *st)
{
	if (S_ISDIR(st->st_mode) || st->st_nlink < 2)
		return 0;
	ino_t *key = malloc(sizeof(*key));
	if (!key)
		return -ENOMEM;
	*key = st->st_ino;
	ino_t **found = tsearch(key, &m->links, cmp_ino);
	if (!found) {
		free(key);
		return -ENOMEM;
	}
	if (*found != key) {
		free(key);
		return 1;
	}
	return 0;
}

static int measure_dir(struct measure *m, int dfd, const char *path, unsigned depth)
{
	if (depth > MEASURE_MAX_DEPTH)
		return -ELOOP;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	uint64_t n = 0, name_bytes = 0;
	int r = 0;
	struct dirent *de;
	errno = 0;
	while (r == 0 && (de = readdir(d))) {
		if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
			continue;
		struct stat st;
		size_t len = strlen(de->d_name);
		n++;
		name_bytes += len;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			break;
		}
		int seen = seen_before(m, &st);
		if (seen != 0) {
			r = seen < 0 ? seen : 0;
			continue;
		}
		m->u.inodes++;
		_cleanup_free_ char *sub = NULL;
		if (asprintf(&sub, "%s/%s", path, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		ssize_t x = llistxattr(sub, NULL, 0);
		if (x > 0)
			m->u.xattr_inodes++;
		if (S_ISREG(st.st_mode))
			r = add_u64(&m->u.blocks, m->rules->file_blocks((uint64_t)st.st_size, m->rules->block));
		else if (S_ISLNK(st.st_mode) && (uint64_t)st.st_size >= m->rules->symlink_inline)
			r = add_u64(&m->u.blocks, 1);
		else if (S_ISDIR(st.st_mode)) {
			int sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			r = sfd < 0 ? -errno : measure_dir(m, sfd, sub, depth + 1);
		}
		errno = 0;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	uint64_t blocks = m->rules->dir_blocks(n, name_bytes, m->rules->block);
	if (r == 0 && depth == 0)
		m->u.top_blocks = blocks;
	if (r == 0)
		r = add_u64(&m->u.blocks, blocks);
	return r;
}

int fs_measure(const char *dir, const struct fs_rules *rules, struct fs_usage *ret)
{
	struct measure m = { .rules = rules };
	int r = 0;
	if (!dir) {
		m.u.blocks = m.u.top_blocks = rules->dir_blocks(0, 0, rules->block);
	} else {
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = fd < 0 ? -errno : measure_dir(&m, fd, dir, 0);
	}
	tdestroy(m.links, free);
	if (r < 0)
		return r;
	*ret = m.u;
	return 0;
}
