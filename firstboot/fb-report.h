/* Reporting: the console lines, status.json and the optional report POST.
 *
 * Lines go to stdout only, flushed one by one:
 *   pmoves-firstboot: step=<name> state=<start|ok|skipped|pending|failed|reboot> [detail]
 *   pmoves-firstboot: done status=<ok|degraded|failed> steps=<n> seconds=<s>
 * The unit sends stdout to journal+console, so each line reaches the journal and the console
 * (the serial one too) exactly once; the program never opens /dev/console itself. */
#ifndef PMOVES_FB_REPORT_H
#define PMOVES_FB_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#define FB_STATUS_PATH "/var/lib/pmoves/firstboot/status.json"

/* A step's state and the run's status. The words fb_state_name() gives are the stable ones of
 * the console lines, state.json and status.json: nothing else spells them. */
enum fb_state {
	FB_STATE_NOT_RUN,  /* "not-run": status.json, a step whose turn has not come */
	FB_STATE_START,    /* "start": a console line only, a step begins (never stored) */
	FB_STATE_RUNNING,  /* "running": state.json, apply under way; status.json, the run is */
	FB_STATE_OK,       /* "ok" */
	FB_STATE_SKIPPED,  /* "skipped": already done, nothing to do, not configured, disabled */
	FB_STATE_PENDING,  /* "pending": something it needs is missing; a later run goes on */
	FB_STATE_FAILED,   /* "failed" */
	FB_STATE_REBOOT,   /* "reboot": applied, takes effect after the reboot it asked for */
	FB_STATE_DEGRADED, /* "degraded": the run, a step failed and the others ran; a step, done
			    * and working with less than asked (fb-step.h) */
	FB_STATE_MAX,
};

/* The word for S; "?" for a value out of range. */
const char *fb_state_name(enum fb_state s);
/* The state NAME spells (NULL allowed), or -EINVAL. */
int fb_state_from_name(const char *name);

/* Strings never to print (borrowed; NULL-terminated): replaced by "(secret)" in every line,
 * message and status.json. A second line of defence: steps keep secrets out of messages. */
void fb_report_set_secrets(char *const *secrets);
/* S in one line, without secrets and without control characters: in a single pass over S,
 * the longest secret that starts at each position becomes "(secret)" (empty secrets are
 * ignored), newlines and tabs become spaces, and the rest goes through str_printable() (lib/util.h). The one
 * filter for the console lines, the journal (stderr), status.json (and so the report POST)
 * and the dry-run plan. Caller frees; NULL on ENOMEM. */
char *fb_redact(const char *s);
/* A line of an external program's output (struct run_opts' line, lib/run.h; DATA: its argv[0])
 * to stderr, the journal and the console, as "pmoves-firstboot: PROG: LINE" through the same
 * filter; a line cut short loses what may be the start of a secret at its end. */
void fb_output_line(char *s, size_t len, bool cut, void *data);

void fb_report_step(const char *step, enum fb_state state, const char *detail);
void fb_report_done(enum fb_state status, size_t steps, double seconds);

struct fb_step_status {
	const char *name;
	enum fb_state state; /* not-run, running, ok, skipped, pending, failed, reboot, degraded */
	char *message;
	double started, finished; /* wall clock (seconds since the epoch), 0 when not yet */
};

struct fb_status {
	enum fb_state status; /* running, ok, degraded, failed, pending, reboot */
	char *config_error;
	double started, finished;
	double own_seconds, external_seconds;
	struct fb_step_status *steps;
	size_t n_steps;
};

double fb_wall_now(void);
/* status.json as text (caller frees), and written atomically, mode 0644. */
char *fb_status_json(const struct fb_status *s);
int fb_status_write(const struct fb_status *s);

#endif
