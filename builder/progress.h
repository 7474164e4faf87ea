/* Progress of long work on a terminal: one line, redrawn at most a few times a second. */
#ifndef PMOVES_PROGRESS_H
#define PMOVES_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	const char *what;
	double last;
	bool tty;
	bool shown;
};

void progress_start(struct progress *p, const char *what);
void progress_update(struct progress *p, uint64_t done, uint64_t total);
void progress_end(struct progress *p);

#endif
