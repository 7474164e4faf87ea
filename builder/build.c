/* Drives one build through its stages in a temp directory, then renames it into place. */
#include "artifacts.h"
#include "build-run.h"
#include "build.h"
#include "cmd.h"
#include "image-hash.h"
#include "log.h"
#include "manifest.h"
#include "run.h"
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

int build_run_env(struct build *b, char *const argv[], char *const env[])
{
	_cleanup_free_ char *line = argv_to_string(argv);
	const char *shown = line ? line : argv[0];
	if (b->log_fd >= 0)
		dprintf(b->log_fd, "+ %s\n", shown);
	if (log_verbose)
		fprintf(stderr, "+ %s\n", shown);
	struct run_opts o = {
		.out_fd = b->log_fd,
		.tee_fd = log_verbose ? STDERR_FILENO : -1,
		.in_fd = -1,
		.env = env,
	};
	int r = run_argv(argv, &o);
	if (interrupted)
		return -EINTR;
	if (r < 0)
		return log_errno(r, "cannot run '%s'", argv[0]);
	if (r == 127) {
		log_error("'%s' could not be run: is it installed? ('make deps' installs what is needed)", argv[0]);
		return -ENOENT;
	}
	if (r != 0) {
		log_error("'%s' failed with exit status %d (its output is in build.log)", shown, r);
		return -EIO;
	}
	return 0;
}

int build_run(struct build *b, char *const argv[]) { return build_run_env(b, argv, NULL); }

char *build_tree_path(const struct build *b, const char *rel)
{
	char *p = NULL;
	while (*rel == '/')
		rel++;
	if (asprintf(&p, "%s/%s", b->tree, rel) < 0)
		return NULL;
	return p;
}

static int stage_boot(struct build *b)
{
	const struct boot_loader *l = boot_find(b->p->boot.loader);
	return l->install(b);
}

static int stage_disk(struct build *b)
{
	_cleanup_close_ int fd = open(b->image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return log_errno(-errno, "cannot create '%s'", b->image);
	if (ftruncate(fd, (off_t)b->plan.layout.disk_size) < 0)
		return log_errno(-errno, "cannot size '%s'", b->image);
	int r = b->plan.table->write(fd, &b->plan.layout);
	if (r < 0)
		return log_errno(r, "cannot write the %s partition table", b->plan.table->name);
	/* The raw output's checksum starts now, on the other core (image-hash.c). */
	for (size_t i = 0; b->p->outputs && b->p->outputs[i]; i++)
		if (STREQ(b->p->outputs[i], "raw"))
			return image_hash_start(b);
	return 0;
}

static const struct stage {
	const char *name;
	int (*run)(struct build *b);
	bool tree_done; /* the staging tree is not needed from here on: remove it meanwhile */
} stages[] = {
	{ "rootfs", rootfs_get, false },
	{ "tree", tree_make, false },
	{ "artifacts", artifacts_bake, false }, /* the profile's "bake": true ones into the tree */
	{ "boot", stage_boot, false },
	{ "disk", stage_disk, false },
	{ "filesystems", fs_make_all, false },
	{ "outputs", outputs_write, true },
	{ "manifest", manifest_write, false },
};

/* Removing the staging tree (thousands of files) is syscall work: it runs on the other core
 * while the outputs and checksums are computed. */
struct remover {
	pthread_t thread;
	const char *path;
	int r;
	bool started;
};

static void *remove_thread(void *arg)
{
	struct remover *rm = arg;
	rm->r = rm_rf(rm->path);
	return NULL;
}

static int remover_join(struct remover *rm)
{
	if (!rm->started)
		return 0;
	pthread_join(rm->thread, NULL);
	rm->started = false;
	return rm->r;
}

/* Temp dirs of builds that died without cleaning up: in DIR, named PREFIX...-PID, where PID is
 * gone. PREFIX ends in '-', so a name that starts with it has a last '-'. */
static void remove_stale_temps(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t pid;
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    parse_u64(strrchr(de->d_name, '-') + 1, &pid) < 0 || pid == 0 || pid > INT_MAX)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/%s", dir, de->d_name) >= 0) {
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
		r = asprintf(&dir, "%s/" SHM_PREFIX "%s-%d", env, b->p->name, (int)getpid());
		where = "in $PMOVES_WORKDIR";
	} else if (tmpfs_has_room(SHM_DIR, need)) {
		r = asprintf(&dir, SHM_DIR "/" SHM_PREFIX "%s-%d", b->p->name, (int)getpid());
		where = "on tmpfs";
	} else {
		r = asprintf(&dir, "%s/work", b->tmp_dir);
	}
	if (r < 0)
		return -ENOMEM;
	if (mkdir(dir, 0700) < 0) {
		r = log_errno(-errno, "cannot create the staging directory '%s'", dir);
		free(dir);
		return r;
	}
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

static void build_free(struct build *b)
{
	image_hash_stop(b);
	if (b->log_fd >= 0)
		close(b->log_fd);
	log_fd_extra = -1;
	if (b->tree_fd >= 0)
		close(b->tree_fd);
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
	json_object_put(b->manifest);
}

int build_profile(const struct profile *p, const struct build_opts *o)
{
	struct build b = { .p = p, .refresh = o->refresh, .log_fd = -1, .tree_fd = -1 };
	int r, status = EXIT_FAIL;
	uint64_t epoch = 0;

	r = epoch_from_env(&epoch);
	if (r < 0)
		return EXIT_USAGE;
	b.epoch_fixed = r > 0;
	b.epoch = epoch;

	if (asprintf(&b.seed_buf, "%s/%s", p->name, o->seed ? o->seed : "") < 0)
		return EXIT_FAIL;
	b.seed = b.seed_buf;
	r = plan_make(p, b.seed, &b.plan);
	if (r < 0) {
		log_errno(r, "cannot plan the disk of '%s'", p->name);
		goto out;
	}

	r = mkdir_p(o->out_base, 0755);
	if (r < 0) {
		log_errno(r, "cannot create '%s'", o->out_base);
		goto out;
	}
	char base[PATH_MAX];
	if (!realpath(o->out_base, base)) {
		log_errno(-errno, "cannot resolve '%s'", o->out_base);
		goto out;
	}
	_cleanup_free_ char *prefix = NULL;
	if (asprintf(&prefix, ".tmp-%s-", p->name) < 0)
		goto out;
	remove_stale_temps(base, prefix);
	remove_stale_temps(SHM_DIR, SHM_PREFIX);
	const char *wd = getenv("PMOVES_WORKDIR");
	if (wd && *wd)
		remove_stale_temps(wd, SHM_PREFIX);
	if (asprintf(&b.out_dir, "%s/%s", base, p->name) < 0 ||
	    asprintf(&b.tmp_dir, "%s/.tmp-%s-%d", base, p->name, (int)getpid()) < 0 ||
	    asprintf(&b.image, "%s/%s.img", b.tmp_dir, p->name) < 0)
		goto out;

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	if (mkdir(b.tmp_dir, 0755) < 0) {
		log_errno(-errno, "cannot create '%s'", b.tmp_dir);
		goto out;
	}
	_cleanup_free_ char *log_path = NULL;
	if (asprintf(&log_path, "%s/build.log", b.tmp_dir) < 0)
		goto cleanup;
	b.log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0644);
	if (b.log_fd < 0) {
		log_errno(-errno, "cannot create '%s'", log_path);
		goto cleanup;
	}
	log_fd_extra = b.log_fd;

	log_info("building '%s' (%s) into '%s'", p->name, p->arch, b.out_dir);
	double t0 = now_seconds();
	struct remover rm = { 0 };
	for (size_t i = 0; i < ARRAY_SIZE(stages); i++) {
		double t = now_seconds();
		if (stages[i].tree_done && !rm.started) {
			if (b.tree_fd >= 0)
				close(b.tree_fd);
			b.tree_fd = -1;
			rm.path = b.work_dir;
			rm.started = pthread_create(&rm.thread, NULL, remove_thread, &rm) == 0;
		}
		log_info("[%zu/%zu] %s", i + 1, ARRAY_SIZE(stages), stages[i].name);
		r = interrupted ? -EINTR : stages[i].run(&b);
		if (r < 0 || interrupted) {
			if (interrupted)
				log_error("interrupted during stage '%s', nothing was changed", stages[i].name);
			else
				log_error("stage '%s' failed, nothing was changed", stages[i].name);
			goto cleanup;
		}
		log_info("[%zu/%zu] %s: %.2f s", i + 1, ARRAY_SIZE(stages), stages[i].name, now_seconds() - t);
	}
	r = rm.started ? remover_join(&rm) : b.work_dir ? rm_rf(b.work_dir) : 0;
	if (r < 0) {
		log_errno(r, "cannot remove '%s'", b.work_dir);
		goto cleanup;
	}
	close(b.log_fd);
	b.log_fd = -1;
	log_fd_extra = -1;
	if (publish(&b) < 0)
		goto cleanup;
	log_info("built '%s/%s.img' in %.1f s", b.out_dir, p->name, now_seconds() - t0);
	status = EXIT_OK;
	goto out;

cleanup:
	log_fd_extra = -1;
	image_hash_stop(&b);
	remover_join(&rm);
	if (b.work_dir)
		rm_rf(b.work_dir); /* may be outside tmp_dir */
	rm_rf(b.tmp_dir);
	if (interrupted)
		status = EXIT_INTERRUPTED;
	else if (r == -ENOENT)
		status = EXIT_MISSING;
out:
	build_free(&b);
	return status;
}
