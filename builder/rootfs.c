/* The rootfs stage and the cache the rootfs sources share. */
#include "rootfs.h"
#include "hash.h"
#include "log.h"
#include "npm-trees.h"
#include "stages.h"
#include "util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

int rootfs_cache_dir(char **ret)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *dir = NULL;
	int r;
	if (xdg && *xdg == '/')
		r = asprintf(&dir, "%s/pmoves-image", xdg);
	else if (home && *home == '/')
		r = asprintf(&dir, "%s/.cache/pmoves-image", home);
	else
		return -ENOENT;
	if (r < 0)
		return -ENOMEM;
	r = mkdir_p(dir, 0755);
	if (r < 0) {
		free(dir);
		return r;
	}
	*ret = dir;
	return 0;
}

int rootfs_cache_lock(const char *dir, const char *key, struct cache_lock *ret)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s.lock", dir, key) < 0)
		return -ENOMEM;
	for (bool said = false;;) {
		_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return log_errno(-errno, "cannot open '%s'", path);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK)
				return log_errno(-errno, "cannot lock '%s'", path);
			if (!said)
				log_info("rootfs: waiting for another build of the same root filesystem (it holds the lock '%s')",
					 path);
			said = true;
			while (flock(fd, LOCK_EX) < 0)
				if (errno != EINTR)
					return log_errno(-errno, "cannot lock '%s'", path);
		}
		/* The holder removes the file as it lets go: a lock on a file no longer under the name
		 * locks nothing; open the name again. */
		struct stat held, named;
		if (fstat(fd, &held) < 0)
			return log_errno(-errno, "cannot stat '%s'", path);
		if (lstat(path, &named) == 0 && named.st_dev == held.st_dev && named.st_ino == held.st_ino) {
			ret->fd = TAKE_FD(fd);
			ret->path = TAKE_PTR(path);
			return 0;
		}
	}
}

void rootfs_cache_unlock(struct cache_lock *l)
{
	if (l->fd < 0)
		return;
	unlink(l->path); /* under the lock: nobody holds the name's file but us */
	close(l->fd);
	free(l->path);
	l->fd = -1;
	l->path = NULL;
}

static int cmp_keys(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void canon(json_object *o, FILE *f)
{
	if (json_object_get_type(o) == json_type_object) {
		size_t n = (size_t)json_object_object_length(o), i = 0;
		const char **keys = calloc(n ? n : 1, sizeof(char *));
		if (!keys)
			return;
		json_object_object_foreach(o, k, v)
		{
			(void)v;
			keys[i++] = k;
		}
		qsort(keys, n, sizeof(char *), cmp_keys);
		fputc('{', f);
		for (i = 0; i < n; i++) {
			json_object *key = json_object_new_string(keys[i]);
			fprintf(f, "%s%s:", i ? "," : "", json_object_to_json_string_ext(key, JSON_C_TO_STRING_PLAIN));
			json_object_put(key);
			canon(json_object_object_get(o, keys[i]), f);
		}
		fputc('}', f);
		free(keys);
	} else if (json_object_get_type(o) == json_type_array) {
		fputc('[', f);
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			if (i)
				fputc(',', f);
			canon(json_object_array_get_idx(o, i), f);
		}
		fputc(']', f);
	} else {
		fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), f);
	}
}

char *json_canonical(json_object *o)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	canon(o, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int rootfs_cache_key(const struct profile *p, char *const *extra, char ret_hex[65])
{
	_cleanup_free_ char *text = json_canonical(p->rootfs.json);
	if (!text)
		return -ENOMEM;
	/* Bump the version when what the tarball holds changes for the same profile (v2: the dpkg
	 * options and hooks in rootfs-mmdebstrap.c). The npm trees' files are inputs too. */
	_cleanup_free_ char *key = NULL, *npm = npm_trees_key(p);
	_cleanup_free_ char *extras = strv_join((char **)extra, "\n+");
	if (!extras || !npm ||
	    asprintf(&key, "pmoves-rootfs-v2\n%s\n%s%s%s%s%s", p->arch->debian, text, *extras ? "\n+" : "", extras,
		     *npm ? "\n" : "", npm) < 0)
		return -ENOMEM;
	return sha256_hex_of(key, strlen(key), ret_hex);
}

int stage_rootfs(struct build *b)
{
	const struct rootfs_source *src = rootfs_source_find(b->p->rootfs.source);
	char *tar = NULL;
	int r = src->get(b, &tar);
	if (r < 0)
		return r;
	b->rootfs_tar = tar;
	if (!b->epoch_fixed) {
		struct stat st;
		if (stat(tar, &st) < 0)
			return log_errno(-errno, "cannot stat '%s'", tar);
		b->epoch = (uint64_t)st.st_mtime;
	}
	return 0;
}
