#include "progress.h"
#include "util.h"

#include <stdio.h>

void progress_start(struct progress *p, const char *what)
{
	*p = (struct progress){ .what = what, .tty = isatty(STDOUT_FILENO) == 1 };
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	if (!p->tty || !total)
		return;
	double now = now_seconds();
	if (p->shown && now - p->last < 0.2 && done < total)
		return;
	char d[24], t[24];
	format_size_human(done, d);
	format_size_human(total, t);
	printf("\r  %s: %3d%% (%s of %s)\033[K", p->what, (int)(done * 100 / total), d, t);
	fflush(stdout);
	p->last = now;
	p->shown = true;
}

void progress_end(struct progress *p)
{
	if (p->shown) {
		printf("\r\033[K");
		fflush(stdout);
	}
	p->shown = false;
}
