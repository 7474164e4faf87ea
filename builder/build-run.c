/* Drives one build through its stages in a temp directory, then renames it into place. */
#include "build-run.h"
#include "build.h"
#include "cmd.h"
#include "image-hash.h"
#include "log.h"
#include "run.h"
#include "stages.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
	pid_t c = run_current_child;
	if (c > 0)
		kill(c, SIGTERM);
}

bool build_interrupted(void) { return interrupted != 0; }

/* A program's output, line by line: into build.log (and the terminal with -v), its last lines
 * kept for the message when it fails (build.log goes with the failed build). */
#define TAIL_LINES 12
struct out_tail {
	int log_fd;
	const char *shown; /* every line to the terminal too, after this prefix (NULL: with -v) */
	char *lines[TAIL_LINES];
	size_t next, n;
};

static void out_line(char *s, size_t len, bool cut, void *data)
{
	struct out_tail *t = data;
	s[len] = '\n'; /* the NUL after the line: written with it, then put back */
	if (t->log_fd >= 0)
		(void)write_full(t->log_fd, s, len + 1);
	if (log_verbose)
		(void)write_full(STDERR_FILENO, s, len + 1);
	s[len] = '\0';
	if (t->shown && !log_verbose) {
		_cleanup_free_ char *safe = str_printable(s, len, NULL);
		fprintf(stderr, "%s%s\n", t->shown, safe ? safe : "");
	}
	char *keep = strndup(s, len > 300 ? 300 : len);
	for (char *c = keep; c && *c; c++)
		if ((unsigned char)*c < ' ' && *c != '\t')
			*c = '?'; /* a terminal gets no control bytes from it */
	free(t->lines[t->next]);
	t->lines[t->next] = keep;
	t->next = (t->next + 1) % TAIL_LINES;
	t->n += t->n < TAIL_LINES;
	(void)cut;
}

static int run_logged(struct build *b, char *const argv[], char *const env[], const char *echo)
{
	_cleanup_free_ char *line = argv_to_string(argv);
	const char *shown = line ? line : argv[0];
	if (b->log_fd >= 0)
		dprintf(b->log_fd, "+ %s\n", shown);
	if (log_verbose)
		fprintf(stderr, "+ %s\n", shown);
	struct out_tail tail = { .log_fd = b->log_fd, .shown = echo };
	struct run_opts o = {
		.in_fd = -1,
		.env = env,
		.line = out_line,
		.line_data = &tail,
	};
	int r = run_argv(argv, &o);
	if (r > 0 && r != 127) {
		log_error("'%s' failed with exit status %d; the last lines of its output:", argv[0], r);
		for (size_t i = 0; i < tail.n; i++) {
			const char *l = tail.lines[(tail.next + TAIL_LINES - tail.n + i) % TAIL_LINES];
			fprintf(stderr, "  | %s\n", l ? l : "");
		}
	}
	for (size_t i = 0; i < TAIL_LINES; i++)
		free(tail.lines[i]);
	if (interrupted)
		return -EINTR;
	if (r < 0)
		return log_errno(r, "cannot run '%s'", argv[0]);
	if (r == 127) {
		log_error("'%s' could not be run: is it installed? ('make deps' installs what is needed)", argv[0]);
		return -ENOENT;
	}
	if (r != 0)
		return -EIO; /* said above */
	return 0;
}

int build_run_env(struct build *b, char *const argv[], char *const env[]) { return run_logged(b, argv, env, NULL); }

int build_run(struct build *b, char *const argv[]) { return run_logged(b, argv, NULL, NULL); }

int build_run_shown(struct build *b, char *const argv[], const char *prefix) { return run_logged(b, argv, NULL, prefix); }

char *build_tree_path(const struct build *b, const char *rel)
{
	char *p = NULL;
	while (*rel == '/')
		rel++;
	if (asprintf(&p, "%s/%s", b->tree, rel) < 0)
		return NULL;
	return p;
}

/* The stages, in order. Each reads only what the stages before it produced; TREE says whether
 * it uses the staging tree, which is removed on the other core once no later stage does. */
enum { TREE_NO, TREE_YES, TREE_IF_OUTPUTS /* when an output says OUT_READS_TREE */ };
static const struct stage {
	const char *name;
	int (*run)(struct build *b);
	unsigned tree;
} stages[] = {
	{ "rootfs", stage_rootfs, TREE_NO },
	{ "tree", stage_tree, TREE_YES },
	{ "firstboot", stage_firstboot, TREE_YES },
	{ "artifacts", stage_artifacts, TREE_YES },
	{ "ollama", stage_ollama, TREE_YES },
	{ "pinokio", stage_pinokio, TREE_YES },
	{ "sandbox", stage_sandbox, TREE_YES },
	{ "boot", stage_boot, TREE_YES },
	{ "split", stage_split, TREE_YES },
	{ "size", stage_size, TREE_YES },
	{ "disk", stage_disk, TREE_NO },
	{ "filesystems", stage_filesystems, TREE_YES },
	{ "outputs", stage_outputs, TREE_IF_OUTPUTS },
	{ "manifest", stage_manifest, TREE_NO },
};

/* Removing the staging tree (thousands of files) is syscall work: it runs on the other core
 * while the outputs and checksums are computed. */
struct build_remover {
	pthread_t thread;
	const char *path;
	int r;
};

static void *remove_thread(void *arg)
{
	struct build_remover *rm = arg;
	rm->r = rm_rf(rm->path);
	return NULL;
}

static void remover_start(struct build *b)
{
	if (b->tree_fd >= 0)
		close(b->tree_fd);
	b->tree_fd = -1;
	struct build_remover *rm = calloc(1, sizeof(*rm));
	if (!rm)
		return; /* removed in the foreground at the end */
	rm->path = b->work_dir;
	if (pthread_create(&rm->thread, NULL, remove_thread, rm) != 0) {
		free(rm);
		return;
	}
	b->remover = rm;
}

/* Wait for the removal, if one was started; returns its result. */
static int remover_join(struct build *b)
{
	struct build_remover *rm = TAKE_PTR(b->remover);
	if (!rm)
		return 0;
	pthread_join(rm->thread, NULL);
	int r = rm->r;
	free(rm);
	return r;
}

/* A new directory DIR/PREFIX<name>-<our PID>-XXXXXX (mkdtemp: a random suffix, 0700), so no
 * name is known before it exists: nothing planted in a shared directory such as /dev/shm can
 * be at it. */
static int temp_dir(const char *dir, const char *prefix, const char *name, char **ret)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s%s-%d-XXXXXX", dir, prefix, name, (int)getpid()) < 0)
		return -ENOMEM;
	if (!mkdtemp(path))
		return log_errno(-errno, "cannot create a directory in '%s'", dir);
	*ret = TAKE_PTR(path);
	return 0;
}

/* Temp dirs of builds that died without cleaning up: in DIR, named as temp_dir() makes them,
 * whose PID is gone. Only directories of our own user: never another user's entry in a
 * shared directory, never a symlink. */
static void remove_stale_temps(const char *dir, const char *prefix)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int dd = dfd >= 0 ? fcntl(dfd, F_DUPFD_CLOEXEC, 0) : -1;
	DIR *d = dd >= 0 ? fdopendir(dd) : NULL;
	if (!d) {
		if (dd >= 0)
			close(dd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name, *last = strrchr(name, '-');
		uint64_t pid;
		struct stat st;
		if (strncmp(name, prefix, strlen(prefix)) != 0 || !last || last - name <= (ptrdiff_t)strlen(prefix) ||
		    strlen(last + 1) != 6)
			continue;
		const char *pid_at = memrchr(name, '-', (size_t)(last - name));
		_cleanup_free_ char *pid_text = pid_at ? strndup(pid_at + 1, (size_t)(last - pid_at - 1)) : NULL;
		if (!pid_text || parse_u64(pid_text, &pid) < 0 || pid == 0 || pid > INT_MAX)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/%s", dir, name) >= 0) {
			log_info("removing '%s' left by an interrupted build", path);
			rm_rf(path);
		}
	}
	closedir(d);
}

/* The staging tree is thousands of files written once, read once by mke2fs and removed: on a
 * tmpfs that is page cache alone, with no journal and no writeback to wait for (here, 0.7 s
 * instead of 6 s for a 680 MB rootfs on the output's ext4). So the scratch space goes to
 * $PMOVES_WORKDIR if set, else to /dev/shm when it is a tmpfs with room for the rootfs, its
 * ESP copy and a margin, and memory to back them; else next to the outputs (tmp_dir/work). */
#define SHM_DIR "/dev/shm"
#define SHM_PREFIX "pmoves-image-"

int build_work_dir(struct build *b)
{
	struct stat st;
	if (stat(b->rootfs_tar, &st) < 0)
		return log_errno(-errno, "cannot read '%s'", b->rootfs_tar);
	uint64_t need = (uint64_t)st.st_size + (uint64_t)st.st_size / 4 + (256u << 20);
	const char *env = getenv("PMOVES_WORKDIR"), *where = "next to the outputs";
	char *dir = NULL;
	int r;
	if (env && *env) {
		r = temp_dir(env, SHM_PREFIX, b->p->name, &dir);
		where = "in $PMOVES_WORKDIR";
	} else if (tmpfs_has_room(SHM_DIR, need)) {
		r = temp_dir(SHM_DIR, SHM_PREFIX, b->p->name, &dir);
		where = "on tmpfs";
	} else if (asprintf(&dir, "%s/work", b->tmp_dir) < 0) {
		r = -ENOMEM;
	} else if ((r = mkdir(dir, 0700) < 0 ? -errno : 0) < 0) {
		log_errno(r, "cannot create the staging directory '%s'", dir);
		free(dir);
	}
	if (r < 0)
		return r;
	b->work_dir = dir;
	if (asprintf(&b->tree, "%s/tree", dir) < 0)
		return -ENOMEM;
	log_info("tree: staging in '%s' (%s)", dir, where);
	return 0;
}

static int epoch_from_env(uint64_t *ret)
{
	const char *e = getenv("SOURCE_DATE_EPOCH");
	if (!e)
		return 0;
	if (parse_u64(e, ret) < 0 || *ret > INT32_MAX) {
		log_error("SOURCE_DATE_EPOCH '%s' is not a number of seconds", e);
		return -EINVAL;
	}
	return 1;
}

/* Put the finished build at out_dir: atomically exchanged with a previous one if there is one. */
static int publish(struct build *b)
{
	if (renameat2(AT_FDCWD, b->tmp_dir, AT_FDCWD, b->out_dir, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EEXIST && errno != ENOTEMPTY)
		return log_errno(-errno, "cannot rename '%s' to '%s'", b->tmp_dir, b->out_dir);
	if (renameat2(AT_FDCWD, b->tmp_dir, AT_FDCWD, b->out_dir, RENAME_EXCHANGE) < 0)
		return log_errno(-errno, "cannot replace '%s'", b->out_dir);
	/* tmp_dir now holds the previous build. */
	rm_rf(b->tmp_dir);
	return 0;
}

/* Undo what an unfinished build made (nothing outside tmp_dir and work_dir), free the rest. */
static void build_done(struct build *b)
{
	image_hash_stop(b);
	remover_join(b);
	log_fd_extra = -1;
	if (b->log_fd >= 0)
		close(b->log_fd);
	if (b->tree_fd >= 0)
		close(b->tree_fd);
	if (!b->published) {
		if (b->work_dir)
			rm_rf(b->work_dir); /* may be outside tmp_dir */
		if (b->tmp_dir_made)
			rm_rf(b->tmp_dir);
	}
	json_object_put(b->packages);
	free(b->kernel_version);
	for (size_t i = 0; i < b->plan.n; i++)
		free(b->plan.parts[i].content);
	free(b->out_dir);
	free(b->tmp_dir);
	free(b->work_dir);
	free(b->tree);
	free(b->image);
	free(b->rootfs_tar);
	free(b->seed_buf);
	json_object_put(b->artifacts);
	json_object_put(b->sandbox_guest);
	json_object_put(b->manifest);
}

/* The identifiers, the directories, build.log: everything before the first stage. */
static int build_prepare(struct build *b, const struct build_opts *o)
{
	const struct profile *p = b->p;
	if (asprintf(&b->seed_buf, "%s/%s", p->name, o->seed ? o->seed : "") < 0)
		return -ENOMEM;
	b->seed = b->seed_buf;
	int r = plan_make(p, b->seed, &b->plan);
	if (r < 0)
		return log_errno(r, "cannot plan the disk of '%s'", p->name);

	r = mkdir_p(o->out_base, 0755);
	if (r < 0)
		return log_errno(r, "cannot create '%s'", o->out_base);
	char base[PATH_MAX];
	if (!realpath(o->out_base, base))
		return log_errno(-errno, "cannot resolve '%s'", o->out_base);
	_cleanup_free_ char *prefix = NULL, *log_path = NULL;
	if (asprintf(&prefix, ".tmp-%s-", p->name) < 0)
		return -ENOMEM;
	remove_stale_temps(base, prefix);
	remove_stale_temps(SHM_DIR, SHM_PREFIX);
	const char *wd = getenv("PMOVES_WORKDIR");
	if (wd && *wd)
		remove_stale_temps(wd, SHM_PREFIX);
	if (asprintf(&b->out_dir, "%s/%s", base, p->name) < 0)
		return -ENOMEM;

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	/* 0700, and renamed into place as it is: the image holds /etc/pmoves/firstboot.json with
	 * the profile's secrets (docs/profiles.md, "Outputs"). */
	r = temp_dir(base, ".tmp-", p->name, &b->tmp_dir);
	if (r < 0)
		return r;
	b->tmp_dir_made = true;
	if (asprintf(&b->image, "%s/%s.img", b->tmp_dir, p->name) < 0 ||
	    asprintf(&log_path, "%s/build.log", b->tmp_dir) < 0)
		return -ENOMEM;
	b->log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND | O_NOFOLLOW, 0600);
	if (b->log_fd < 0)
		return log_errno(-errno, "cannot create '%s'", log_path);
	log_fd_extra = b->log_fd;
	return 0;
}

static bool stage_uses_tree(const struct build *b, size_t i)
{
	return stages[i].tree == TREE_YES ||
	       (stages[i].tree == TREE_IF_OUTPUTS && build_outputs_want(b, OUT_READS_TREE));
}

static int build_stages(struct build *b)
{
	size_t n = ARRAY_SIZE(stages), last_tree = 0;
	for (size_t i = 0; i < n; i++)
		if (stage_uses_tree(b, i))
			last_tree = i;
	for (size_t i = 0; i < n; i++) {
		double t = now_seconds();
		if (i > last_tree && !b->remover && b->work_dir)
			remover_start(b);
		log_info("[%zu/%zu] %s", i + 1, n, stages[i].name);
		int r = interrupted ? -EINTR : stages[i].run(b);
		if (interrupted) {
			log_error("interrupted during stage '%s', nothing was changed", stages[i].name);
			return -EINTR;
		}
		if (r < 0) {
			log_error("stage '%s' failed, nothing was changed", stages[i].name);
			return r;
		}
		log_info("[%zu/%zu] %s: %.2f s", i + 1, n, stages[i].name, now_seconds() - t);
	}
	return 0;
}

/* The staging tree gone, build.log closed, the outputs in place. */
static int build_publish(struct build *b)
{
	int r = b->remover ? remover_join(b) : b->work_dir ? rm_rf(b->work_dir) : 0;
	if (r < 0)
		return log_errno(r, "cannot remove '%s'", b->work_dir);
	log_fd_extra = -1;
	close(TAKE_FD(b->log_fd));
	r = publish(b);
	if (r < 0)
		return r;
	b->published = true;
	return 0;
}

int build_profile(const struct profile *p, const struct build_opts *o)
{
	uint64_t epoch = 0;
	int r = epoch_from_env(&epoch);
	if (r < 0)
		return EXIT_USAGE;
	_cleanup_(build_done) struct build b = {
		.p = p, .refresh = o->refresh, .log_fd = -1, .tree_fd = -1, .epoch = epoch, .epoch_fixed = r > 0,
	};
	double t0 = now_seconds();
	r = build_prepare(&b, o);
	if (r < 0)
		return EXIT_FAIL;
	log_info("building '%s' (%s) into '%s'", p->name, p->arch->name, b.out_dir);
	r = build_stages(&b);
	if (r == 0)
		r = build_publish(&b);
	if (r == 0) {
		log_info("built '%s/%s.img' in %.1f s", b.out_dir, p->name, now_seconds() - t0);
		return EXIT_OK;
	}
	if (interrupted)
		return EXIT_INTERRUPTED;
	return r == -ENOENT ? EXIT_MISSING : EXIT_FAIL;
}
