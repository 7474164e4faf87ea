/* The engine: runs a table of steps against the merged config, keeping state.json so that a
 * power cut at any moment neither applies a step twice nor skips one (see fb-engine.c). */
#ifndef PMOVES_FB_ENGINE_H
#define PMOVES_FB_ENGINE_H

#include "fb-step.h"

#define FB_STATE_PATH "/var/lib/pmoves/firstboot/state.json"
/* A step found "running" this many times (each an interrupted apply) fails instead of
 * being tried again: an apply that crashes the machine must not loop forever. */
#define FB_MAX_ATTEMPTS 3

struct fb_run_opts {
	bool dry_run; /* print the plan, write nothing, run nothing that changes anything */
};

/* Returns an exit status: FB_EXIT_OK (done, or a reboot was asked for), FB_EXIT_FAILED
 * (failed, degraded or pending), FB_EXIT_USAGE (invalid config). */
int fb_engine_run(const struct fb_step *const *steps, size_t n, const struct fb_run_opts *o);

#endif
