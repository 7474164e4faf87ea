/* Helpers for the pmoves-firstboot tests: root trees in mkdtemp dirs, a recording stand-in
 * runner, running the program's commands in a child with its output in files. */
#ifndef PMOVES_FB_TESTLIB_H
#define PMOVES_FB_TESTLIB_H

#include "fb-cmd.h"
/* Not builder/firstboot.h, which comes first on the include path. */
#include "../firstboot/firstboot.h"
#include "hash.h"
#include "tap.h"
#include "util.h"

#include "run.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>

static inline char *t_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *t_strf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static inline void t_write(const char *dir, const char *rel, const char *text)
{
	char *p = t_strf("%s/%s", dir, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	mkdir_p(p, 0755);
	*slash = '/';
	if (write_file_atomic(p, text, strlen(text), 0644) < 0)
		abort();
	free(p);
}

/* The file's text, or NULL. Caller frees. */
static inline char *t_read(const char *dir, const char *rel)
{
	char *p = rel ? t_strf("%s/%s", dir, rel) : strdup(dir), *buf = NULL;
	size_t len;
	if (read_file(p, 16 << 20, &buf, &len) < 0)
		buf = NULL;
	free(p);
	return buf;
}

static inline bool t_exists(const char *dir, const char *rel)
{
	char *p = t_strf("%s/%s", dir, rel);
	struct stat st;
	bool r = lstat(p, &st) == 0;
	free(p);
	return r;
}

static inline struct stat t_stat(const char *dir, const char *rel)
{
	char *p = t_strf("%s/%s", dir, rel);
	struct stat st = { 0 };
	lstat(p, &st);
	free(p);
	return st;
}

static inline size_t t_count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* A fresh tree with /etc/passwd and /etc/group, and the stand-in runner beside it (not in it):
 * it records every argv in DIR.calls and keeps unit states as files in DIR.units/. */
static inline char *t_tree(void)
{
	char tmpl[] = "/tmp/test-fb-XXXXXX";
	if (!mkdtemp(tmpl))
		abort();
	char *root = t_strf("%s/root", tmpl);
	mkdir_p(root, 0755);
	t_write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1001::/home/alice:/bin/sh\n");
	t_write(root, "etc/group", "root:x:0:\nalice:x:1001:\n");
	char *units = t_strf("%s/units", tmpl);
	mkdir_p(units, 0755);
	char *script = t_strf(
		"#!/bin/sh\n"
		"# stand-in for systemctl, hostname, sysctl, modprobe: records argv, fakes unit state;\n"
		"# ssh-keygen runs for real\n"
		"echo \"$*\" >> %s/calls\n"
		"[ \"$1\" = ssh-keygen ] && exec \"$@\"\n"
		"[ \"$1\" = systemctl ] || exit 0\n"
		"shift\n"
		"case \"$1\" in --root=*) shift;; esac\n"
		"verb=$1; shift\n"
		"case $verb in\n"
		"is-enabled) if [ -e %s/\"$1\".enabled ]; then echo enabled; exit 0; fi\n"
		"  if [ -e %s/\"$1\".masked ]; then echo masked; exit 0; fi; echo disabled; exit 1;;\n"
		"enable) for u; do : > %s/\"$u\".enabled; done;;\n"
		"mask) for u; do : > %s/\"$u\".masked; done;;\n"
		"disable) for u; do rm -f %s/\"$u\".enabled; done;;\n"
		"esac\nexit 0\n",
		tmpl, units, units, units, units, units);
	char *sp = t_strf("%s/stand-in", tmpl);
	if (write_file_atomic(sp, script, strlen(script), 0755) < 0)
		abort();
	free(script);
	free(sp);
	free(units);
	return root;
}

/* ROOT/../NAME */
static inline char *t_beside(const char *root, const char *name)
{
	return t_strf("%.*s/%s", (int)(strrchr(root, '/') - root), root, name);
}

struct t_result {
	int status;
	char *out, *err;
};

static inline void t_result_free(struct t_result *r)
{
	free(r->out);
	free(r->err);
}

/* Seconds after which t_fb()'s child is killed (status 128+SIGALRM); 0: no guard. */
static unsigned t_fb_timeout;

/* Run fb_main(ARGV) in a child with the stand-in runner and ENV ("NAME=value" or NULL). */
static inline struct t_result t_fb(const char *root, const char *env, char **argv)
{
	struct t_result res = { -1, NULL, NULL };
	char *outp = t_beside(root, "out"), *errp = t_beside(root, "err"), *stand_in = t_beside(root, "stand-in");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(120);
		setenv("PMOVES_FIRSTBOOT_RUNNER", stand_in, 1);
		if (env)
			putenv((char *)env);
		if (t_fb_timeout)
			alarm(t_fb_timeout);
		int argc = 0;
		while (argv[argc])
			argc++;
		int r = fb_main(argc, argv);
		fflush(stdout);
		fflush(stderr);
		_exit(r);
	}
	int st;
	if (pid > 0 && waitpid(pid, &st, 0) == pid)
		res.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	res.out = t_read(outp, NULL);
	res.err = t_read(errp, NULL);
	free(outp);
	free(errp);
	free(stand_in);
	return res;
}

static inline struct t_result t_run(const char *root, const char *env)
{
	char *argv[] = { "pmoves-firstboot", "run", "--root", (char *)root, NULL };
	return t_fb(root, env, argv);
}

/* A digest of the tree: every path, type, mode, owner, inode, mtime and content, except
 * the first-boot state directory when SKIP_STATE. */
static struct sha256 tree_hash;
static const char *tree_root;
static bool tree_skip_state;
static inline int tree_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag, (void)ftw;
	const char *rel = path + strlen(tree_root);
	if (tree_skip_state && strstr(rel, "/var/lib/pmoves/firstboot"))
		return 0;
	char line[512];
	int n = snprintf(line, sizeof(line), "%s %o %u %u %lu %ld.%ld\n", rel, st->st_mode, st->st_uid, st->st_gid,
			 (unsigned long)st->st_ino, (long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	sha256_update(&tree_hash, line, n > 0 ? (size_t)n : 0);
	if (S_ISREG(st->st_mode)) {
		char *buf = t_read(path, NULL);
		if (buf)
			sha256_update(&tree_hash, buf, strlen(buf));
		free(buf);
	}
	return 0;
}

static inline char *t_tree_digest(const char *root, bool skip_state)
{
	uint8_t d[32];
	char hex[65];
	sha256_init(&tree_hash);
	tree_root = root;
	tree_skip_state = skip_state;
	nftw(root, tree_one, 32, FTW_PHYS);
	sha256_final(&tree_hash, d);
	sha256_hex(d, hex);
	return strdup(hex);
}

/* Copy FILE of the host (symlinks followed) to ROOT at the same path, mode 0755. 0 or -1. */
static inline int t_copy_in(const char *root, const char *file)
{
	char *buf = NULL, *dst = t_strf("%s%s", root, file);
	size_t len;
	int r = read_file(file, 256u << 20, &buf, &len) < 0 ? -1 : 0;
	char *slash = strrchr(dst, '/');
	*slash = '\0';
	mkdir_p(dst, 0755);
	*slash = '/';
	if (r == 0 && write_file_atomic(dst, buf, len, 0755) < 0)
		r = -1;
	free(buf), free(dst);
	return r;
}

/* The host's program PROG and the shared libraries `ldd` lists for it, copied into ROOT at the
 * same paths: `chroot ROOT PROG` then runs it, as a program of the tree (an image has its own).
 * 0, or -1 when PROG or ldd is missing. */
static inline int t_tree_program(const char *root, const char *prog)
{
	char *path = NULL, *out = NULL;
	if (find_program(prog, &path) < 0)
		return -1;
	char *argv[] = { "ldd", path, NULL };
	struct run_opts o = { .capture = &out };
	int r = run_argv(argv, &o) == 0 && t_copy_in(root, path) == 0 ? 0 : -1;
	/* "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "\t/lib64/ld-linux-x86-64.so.2 (0x...)" */
	for (char *p = out; r == 0 && p && (p = strchr(p, '/'));) {
		size_t n = strcspn(p, " \t\n");
		char *lib = strndup(p, n);
		if (p[-1] == ' ' || p[-1] == '\t')
			r = t_copy_in(root, lib);
		free(lib);
		p += n;
	}
	free(path), free(out);
	return r;
}

/* A symlink at ROOT/REL to the directory SENTINEL outside the tree: by its absolute path, or
 * with RELATIVE as "../../.." up out of the tree (one more ".." than REL is deep), which
 * RESOLVE_IN_ROOT stops at the root. The sentinel is made empty. */
static inline void t_escape_link(const char *root, const char *rel, const char *sentinel, bool relative)
{
	rm_rf(sentinel);
	mkdir_p(sentinel, 0755);
	char *link = t_strf("%s/%s", root, rel), *target = NULL;
	char *slash = strrchr(link, '/');
	*slash = '\0';
	mkdir_p(link, 0755);
	*slash = '/';
	rm_rf(link);
	if (relative) {
		size_t depth = t_count(rel, "/") + 1;
		target = strdup("");
		for (size_t i = 0; i < depth; i++) {
			char *t = t_strf("%s../", target);
			free(target);
			target = t;
		}
		char *t = t_strf("%s%s", target, strrchr(sentinel, '/') + 1);
		free(target);
		target = t;
	} else
		target = strdup(sentinel);
	if (symlink(target, link) < 0)
		abort();
	free(link), free(target);
}

/* Entries in the directory DIR (0 for an empty or missing one). */
static inline size_t t_dir_entries(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));)
		n += !STREQ(de->d_name, ".") && !STREQ(de->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

static inline void t_cleanup(char *root)
{
	char *top = strndup(root, (size_t)(strrchr(root, '/') - root));
	rm_rf(top);
	free(top);
	free(root);
}

#endif
