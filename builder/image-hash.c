/* A SHA-256 of a multi-gigabyte image costs seconds of one core (2 GiB: 5.5 s here, with
 * libcrypto and no SHA instructions), most of it in the zeros of its holes. The bytes before a
 * partition are final once the table is written, and a partition's once its filesystem is made,
 * so a thread hashes the image in order up to the first partition still being made, while
 * mke2fs works on the other core: when the last filesystem is done, all before it is hashed. */
#include "image-hash.h"
#include "hash-file.h"
#include "log.h"
#include "progress.h"
#include "util.h"

#include <fcntl.h>
#include <pthread.h>

struct image_hash {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* mark moved, or the thread finished */
	struct file_sha256 h; /* its fd is the image's, ours to close */
	uint64_t size;
	uint64_t mark;          /* bytes [0, mark) are final */
	uint64_t done;          /* bytes hashed, for progress */
	bool part_done[PROFILE_MAX_PARTS];
	bool cancel, finished;
	int r;
	char hex[65];
};

/* The start of the first unfinished partition in offset order, or the image size. */
static uint64_t final_mark(const struct build *b, const struct image_hash *ih)
{
	uint64_t mark = ih->size;
	for (size_t i = 0; i < b->plan.n; i++)
		if (!ih->part_done[i] && b->plan.parts[i].entry->start < mark)
			mark = b->plan.parts[i].entry->start;
	return mark;
}

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)total;
	struct image_hash *ih = ctx;
	pthread_mutex_lock(&ih->lock);
	ih->done = done;
	bool stop = ih->cancel;
	pthread_mutex_unlock(&ih->lock);
	return stop || build_interrupted() ? -EINTR : 0;
}

static void *hash_thread(void *arg)
{
	struct image_hash *ih = arg;
	int r = 0;
	uint64_t pos = 0;
	while (r == 0 && pos < ih->size) {
		pthread_mutex_lock(&ih->lock);
		while (ih->mark <= pos && !ih->cancel)
			pthread_cond_wait(&ih->cond, &ih->lock);
		uint64_t to = ih->mark;
		bool stop = ih->cancel;
		pthread_mutex_unlock(&ih->lock);
		if (stop)
			r = -EINTR;
		else if ((r = file_sha256_to(&ih->h, to, ih->size, on_progress, ih)) == 0)
			pos = to;
	}
	if (r == 0)
		r = file_sha256_final(&ih->h, ih->hex);
	pthread_mutex_lock(&ih->lock);
	ih->r = r;
	ih->finished = true;
	pthread_cond_broadcast(&ih->cond);
	pthread_mutex_unlock(&ih->lock);
	return NULL;
}

int image_hash_start(struct build *b)
{
	struct image_hash *ih = calloc(1, sizeof(*ih));
	if (!ih)
		return -ENOMEM;
	ih->size = b->plan.layout.disk_size;
	int fd = open(b->image, O_RDONLY | O_CLOEXEC);
	int r = fd < 0 ? -errno : file_sha256_init(&ih->h, fd);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		free(ih);
		return log_errno(r, "cannot start hashing '%s'", b->image);
	}
	for (size_t i = 0; i < b->plan.n; i++)
		ih->part_done[i] = !fs_find(b->plan.parts[i].spec->fs); /* "none": stays as the table left it */
	ih->mark = final_mark(b, ih);
	pthread_mutex_init(&ih->lock, NULL);
	pthread_cond_init(&ih->cond, NULL);
	r = -pthread_create(&ih->thread, NULL, hash_thread, ih);
	if (r < 0) {
		pthread_mutex_destroy(&ih->lock);
		pthread_cond_destroy(&ih->cond);
		file_sha256_free(&ih->h);
		close(ih->h.fd);
		free(ih);
		return log_errno(r, "cannot start the image hashing thread");
	}
	b->ihash = ih;
	return 0;
}

void image_hash_part_done(struct build *b, size_t i)
{
	struct image_hash *ih = b->ihash;
	if (!ih || i >= b->plan.n)
		return;
	pthread_mutex_lock(&ih->lock);
	ih->part_done[i] = true;
	ih->mark = final_mark(b, ih);
	pthread_cond_broadcast(&ih->cond);
	pthread_mutex_unlock(&ih->lock);
}

static void release(struct build *b)
{
	struct image_hash *ih = b->ihash;
	pthread_join(ih->thread, NULL);
	pthread_mutex_destroy(&ih->lock);
	pthread_cond_destroy(&ih->cond);
	file_sha256_free(&ih->h);
	close(ih->h.fd);
	free(ih);
	b->ihash = NULL;
}

int image_hash_finish(struct build *b, char out_hex[65])
{
	struct image_hash *ih = b->ihash;
	if (!ih)
		return -EINVAL;
	struct progress pr;
	progress_start(&pr, "checksum");
	pthread_mutex_lock(&ih->lock);
	if (ih->mark < ih->size) {
		/* A partition was never marked done: hashing it now could read bytes still changing. */
		ih->cancel = true;
		pthread_cond_broadcast(&ih->cond);
	}
	while (!ih->finished) {
		progress_update(&pr, ih->done, ih->size);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000 * 1000 * 1000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000 * 1000 * 1000;
		}
		pthread_cond_timedwait(&ih->cond, &ih->lock, &ts);
	}
	bool cancelled = ih->cancel && !build_interrupted();
	int r = ih->r;
	memcpy(out_hex, ih->hex, 65);
	pthread_mutex_unlock(&ih->lock);
	progress_end(&pr);
	release(b);
	if (cancelled)
		return log_errno(-EINVAL, "the image's checksum was asked for before all its partitions were made");
	if (r < 0 && r != -EINTR)
		return log_errno(r, "cannot checksum '%s'", b->image);
	return r;
}

void image_hash_stop(struct build *b)
{
	struct image_hash *ih = b->ihash;
	if (!ih)
		return;
	pthread_mutex_lock(&ih->lock);
	ih->cancel = true;
	pthread_cond_broadcast(&ih->cond);
	pthread_mutex_unlock(&ih->lock);
	release(b);
}
