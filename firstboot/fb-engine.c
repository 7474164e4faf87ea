/* The engine.
 *
 * Why a power cut cannot apply a step twice or skip one. state.json is replaced atomically
 * (temp, fsync, rename, fsync dir), so after a cut it holds either the old or the new record,
 * never a mix. For each step the engine writes "running" (attempts + 1) before apply, and the
 * outcome after it. A cut can find a step:
 *   - without a record, or "pending"/"failed": it did not finish; it runs again through check;
 *   - "running": apply may or may not have finished. It is never applied blindly: check says
 *     whether the effect is there; if so the step ends "skipped" (already done), otherwise
 *     apply runs. Apply itself writes with atomic renames, so "there" is all or nothing;
 *   - "ok"/"skipped" under the same config: done, never run again;
 *   - "reboot": applied, the reboot it asked for happened (or not): verify decides.
 * Steps run in table order and a step's record is written before the next starts, so no
 * later step can be recorded while an earlier one is not: nothing is skipped.
 * The config's hash (without secrets) is in the state: a changed config re-checks every step. */
#include "fb-engine.h"
#include "fb-config.h"
#include "fb-fetch.h"
#include "fb-report.h"
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>

struct engine {
	const struct fb_run_opts *o;
	json_object *state;       /* {"version", "config", "status", "steps": {name: {state, attempts}}} */
	json_object *state_steps; /* borrowed from state */
	struct fb_status status;
};

static void crash_point(const char *step, const char *when)
{
	/* Test hook: PMOVES_FIRSTBOOT_CRASH_AFTER=STEP[:running|:applied] ends the program as a
	 * power cut would, right after that point. */
	const char *e = getenv("PMOVES_FIRSTBOOT_CRASH_AFTER");
	size_t n = strlen(step);
	if (!e || strncmp(e, step, n))
		return;
	if ((!when && !e[n]) || (when && e[n] == ':' && STREQ(e + n + 1, when))) {
		fflush(stdout);
		fflush(stderr);
		_exit(99);
	}
}

/* The step's state in state.json, or -ENOENT (no record, or a word that is not a state). */
static int state_of(struct engine *e, const char *step, int64_t *ret_attempts)
{
	json_object *rec, *v;
	if (ret_attempts)
		*ret_attempts = 0;
	if (!json_object_object_get_ex(e->state_steps, step, &rec))
		return -ENOENT;
	if (ret_attempts && json_object_object_get_ex(rec, "attempts", &v))
		*ret_attempts = json_object_get_int64(v);
	int st = json_object_object_get_ex(rec, "state", &v) ? fb_state_from_name(json_object_get_string(v)) : -ENOENT;
	return st < 0 ? -ENOENT : st;
}

static int state_write(struct engine *e)
{
	if (e->o->dry_run)
		return 0;
	_cleanup_free_ char *text = fb_strdupf(
		"%s\n", json_object_to_json_string_ext(e->state, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
	int r = text ? fb_write(FB_STATE_PATH, text, strlen(text), 0644, (uid_t)-1, (gid_t)-1) : -ENOMEM;
	if (r < 0)
		fb_error("cannot write '%s': %s", FB_STATE_PATH, strerror(-r));
	return r;
}

/* The step's record in memory only: written with the next state_write(). */
static int state_put(struct engine *e, const char *step, enum fb_state state, int64_t attempts)
{
	json_object *rec = json_object_new_object();
	if (!rec)
		return -ENOMEM;
	json_object_object_add(rec, "state", json_object_new_string(fb_state_name(state)));
	json_object_object_add(rec, "attempts", json_object_new_int64(attempts));
	json_object_object_add(e->state_steps, step, rec);
	return 0;
}

static int state_set(struct engine *e, const char *step, enum fb_state state, int64_t attempts)
{
	int r = state_put(e, step, state, attempts);
	return r < 0 ? r : state_write(e);
}

/* "running" with the count of applies in a row that never finished (a crash or power cut
 * during apply): a pending step tried again on later boots does not count. */
static int state_running(struct engine *e, const char *step, int64_t attempts, int64_t interrupted)
{
	int r = state_set(e, step, FB_STATE_RUNNING, attempts);
	json_object *rec;
	if (r == 0 && interrupted > 0 && json_object_object_get_ex(e->state_steps, step, &rec)) {
		json_object_object_add(rec, "interrupted", json_object_new_int64(interrupted));
		r = state_write(e);
	}
	return r;
}

static int64_t interrupted_of(struct engine *e, const char *step)
{
	json_object *rec, *v;
	return json_object_object_get_ex(e->state_steps, step, &rec) && json_object_object_get_ex(rec, "interrupted", &v)
		       ? json_object_get_int64(v)
		       : 0;
}

static void state_load(struct engine *e, const char *hash, bool *ret_same_config)
{
	_cleanup_free_ char *buf = NULL, *err = NULL;
	json_object *o = NULL, *steps, *v;
	int r = fb_read_file(FB_STATE_PATH, FB_CONFIG_MAX, &buf, NULL, &err);
	if (r == 0 && !(o = json_tokener_parse(buf)))
		fb_warn("'%s' is not JSON, starting afresh", FB_STATE_PATH);
	else if (r < 0 && r != -ENOENT)
		fb_warn("%s, starting afresh", err ? err : strerror(-r));
	if (!o || !json_object_object_get_ex(o, "steps", &steps) || !json_object_is_type(steps, json_type_object)) {
		json_object_put(o);
		o = json_object_new_object();
		steps = json_object_new_object();
		json_object_object_add(o, "steps", steps);
	}
	*ret_same_config = json_object_object_get_ex(o, "config", &v) && hash && STREQ(json_object_get_string(v), hash);
	json_object_object_add(o, "version", json_object_new_int(1));
	if (hash)
		json_object_object_add(o, "config", json_object_new_string(hash));
	e->state = o;
	e->state_steps = steps;
}

static void step_end_mem(struct engine *e, size_t i, enum fb_state state, const char *msg);

/* A step's end: reported, and status.json written (a step that ran: its result is kept even
 * if the machine goes down next). */
static void step_end(struct engine *e, size_t i, enum fb_state state, const char *msg)
{
	step_end_mem(e, i, state, msg);
	if (!e->o->dry_run)
		fb_status_write(&e->status);
}

/* Reported, status.json written with the next write: steps skipped without running (not
 * configured, disabled) cost no disk writes each; a crash just before the next write loses
 * nothing that the next run does not find again. */
static void step_end_mem(struct engine *e, size_t i, enum fb_state state, const char *msg)
{
	struct fb_step_status *s = &e->status.steps[i];
	s->state = state;
	free(s->message);
	s->message = msg ? strdup(msg) : NULL;
	if (s->started <= 0)
		s->started = fb_wall_now();
	s->finished = fb_wall_now();
	fb_report_step(s->name, state, msg);
}

static void plan(const char *step, const char *action, const char *why)
{
	_cleanup_free_ char *clean = why ? fb_redact(why) : NULL;
	printf("%s: plan step=%s %s%s%s\n", FB_NAME, step, action, clean ? " " : "", clean ? clean : "");
	fflush(stdout);
}

static void step_options(json_object *config, const struct fb_step *s, bool *ret_enabled, bool *ret_required)
{
	json_object *steps, *rec, *v;
	*ret_enabled = true;
	*ret_required = s->required;
	if (!json_object_object_get_ex(config, "steps", &steps) || !json_object_object_get_ex(steps, s->name, &rec))
		return;
	if (json_object_object_get_ex(rec, "enabled", &v))
		*ret_enabled = json_object_get_boolean(v);
	if (json_object_object_get_ex(rec, "required", &v))
		*ret_required = json_object_get_boolean(v);
}

static enum fb_state state_of_result(enum fb_result res)
{
	switch (res) {
	case FB_OK:
		return FB_STATE_OK;
	case FB_PENDING:
		return FB_STATE_PENDING;
	case FB_REBOOT:
		return FB_STATE_REBOOT;
	case FB_DEGRADED:
		return FB_STATE_DEGRADED;
	case FB_FAILED:
		break;
	}
	return FB_STATE_FAILED;
}

/* Run one step that needs running; PREV is its state in state.json or -ENOENT. Returns its
 * final state. */
static enum fb_state run_step(struct engine *e, size_t i, const struct fb_step *s, json_object *section,
			      const struct fb_ctx *ctx, int prev)
{
	_cleanup_free_ char *msg = NULL;
	int64_t attempts;
	state_of(e, s->name, &attempts);

	if (prev == FB_STATE_REBOOT) {
		/* Applied before the reboot it asked for: only verify. */
		if (e->o->dry_run) {
			plan(s->name, "verify", "after the reboot it asked for");
			return FB_STATE_OK;
		}
		e->status.steps[i].started = fb_wall_now();
		fb_report_step(s->name, FB_STATE_START, "after reboot");
		int r = s->verify ? s->verify(ctx, section, &msg) : 0;
		enum fb_state st = r < 0 ? FB_STATE_FAILED : r > 0 ? FB_STATE_DEGRADED : FB_STATE_OK;
		state_set(e, s->name, st, attempts);
		step_end(e, i, st, msg ? msg : r < 0 ? "not in effect after the reboot" : "in effect after reboot");
		return st;
	}

	int r = s->check(ctx, section, &msg);
	if (e->o->dry_run) {
		plan(s->name, r > 0 ? "skip" : r == 0 ? "run" : "fail", r > 0 && !msg ? "already done" : msg);
		if (r != 0 || !s->dry_run_apply)
			return r > 0 ? FB_STATE_SKIPPED : r == 0 ? FB_STATE_OK : FB_STATE_FAILED;
		/* Every change this step makes goes through fb_write() and fb_run(): show them. */
		free(msg);
		msg = NULL;
		fb_dry_run_set(true);
		enum fb_result res = s->apply(ctx, section, &msg);
		fb_dry_run_set(false);
		_cleanup_free_ char *what = fb_strdupf("would end %s%s%s", fb_state_name(state_of_result(res)),
						       msg ? ": " : "", msg ? msg : "");
		plan(s->name, "result", what);
		return res == FB_FAILED ? FB_STATE_FAILED : FB_STATE_OK;
	}
	e->status.steps[i].started = fb_wall_now();
	int64_t interrupted = prev == FB_STATE_RUNNING ? interrupted_of(e, s->name) + 1 : 0;
	if (interrupted >= FB_MAX_ATTEMPTS && r == 0) {
		state_set(e, s->name, FB_STATE_FAILED, attempts);
		step_end(e, i, FB_STATE_FAILED, "interrupted too often: given up");
		return FB_STATE_FAILED;
	}
	_cleanup_free_ char *detail = attempts > 0 ? fb_strdupf("attempt %lld", (long long)attempts + 1) : NULL;
	fb_report_step(s->name, FB_STATE_START, detail);
	state_running(e, s->name, attempts + 1, interrupted);
	crash_point(s->name, "running");

	enum fb_state st;
	if (r > 0) {
		/* check may say why there is nothing to do ("not a UEFI machine"). */
		st = FB_STATE_SKIPPED;
		if (!msg)
			msg = strdup("already done");
	} else if (r < 0) {
		/* A check that fails says why (the step's own message, else its error). */
		st = FB_STATE_FAILED;
		if (!msg)
			msg = fb_strdupf("cannot tell whether it is done: %s", strerror(-r));
	} else {
		free(msg);
		msg = NULL;
		enum fb_result res = s->apply(ctx, section, &msg);
		/* The state says "ok" only once the step's effects are on disk. */
		fb_sync();
		crash_point(s->name, "applied");
		if (res == FB_OK && s->verify) {
			free(msg);
			msg = NULL;
			int v = s->verify(ctx, section, &msg);
			res = v < 0 ? FB_FAILED : v > 0 ? FB_DEGRADED : FB_OK;
		}
		st = state_of_result(res);
	}
	state_set(e, s->name, st, attempts + 1);
	step_end(e, i, st, msg);
	crash_point(s->name, NULL);
	return st;
}

static void disable_unit(void)
{
	char *units[] = { "pmoves-firstboot.service", "pmoves-firstboot.timer", NULL };
	int r = fb_systemctl("disable", units);
	if (r != 0)
		fb_warn("cannot disable pmoves-firstboot.service: systemctl exited with %d", r);
	/* systemctl's symlink removal is not synced: a power cut soon after would bring the unit
	 * back on the next boot. */
	fb_sync();
	fb_systemctl_live("stop", units + 1);
}

static void power(const char *verb)
{
	if (!fb_live()) {
		fb_debug("not the running system: no %s", verb);
		return;
	}
	int r = fb_systemctl_live(verb, NULL);
	if (r != 0)
		fb_error("cannot %s: systemctl exited with %d", verb, r);
}

/* SIZE bytes of zeros over FD from its start, then fsync. */
static int wipe_fd(int fd, uint64_t size)
{
	static const char zeros[4096];
	for (uint64_t off = 0; off < size; off += sizeof(zeros)) {
		int r = pwrite_full(fd, zeros, size - off < sizeof(zeros) ? (size_t)(size - off) : sizeof(zeros), off);
		if (r < 0)
			return r;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

/* device.json without its secrets. The scrubbed text replaces it atomically (a power cut
 * leaves the old file or the new one, both valid configs), and then the old file's bytes
 * are overwritten with zeros in place, through a descriptor opened before the rename: the
 * rename alone leaves the secrets in the FAT clusters the old file freed. Zeros before the
 * rename would leave a device.json of zeros after a power cut between the two, a config
 * that every later boot refuses. docs/firstboot.md says what flash media keep anyway. */
static void scrub_device(struct fb_config *cfg)
{
	if (!cfg->device_path || !cfg->device)
		return;
	json_object *copy = NULL;
	if (json_object_deep_copy(cfg->device, &copy, NULL) < 0)
		return;
	int n = fb_config_scrub(copy, NULL);
	if (n > 0) {
		const char *text = json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
										JSON_C_TO_STRING_NOSLASHESCAPE);
		_cleanup_free_ char *out = fb_strdupf("%s\n", text);
		struct stat st = { .st_mode = 0644 };
		_cleanup_close_ int fd = fb_open(cfg->device_path, O_RDWR | O_NOFOLLOW | O_NONBLOCK, 0);
		int old = fd < 0 ? fd : fb_fd_regular(fd, cfg->device_path, NULL);
		if (old == 0 && fstat(fd, &st) < 0)
			old = -errno;
		int r = out ? fb_write(cfg->device_path, out, strlen(out), st.st_mode & 0777, (uid_t)-1, (gid_t)-1) : -ENOMEM;
		if (r < 0)
			fb_warn("cannot remove the secrets from '%s': %s", cfg->device_path, strerror(-r));
		else
			fb_debug("removed %d secret values from '%s'", n, cfg->device_path);
		if (r == 0 && (r = old < 0 ? old : wipe_fd(fd, (uint64_t)st.st_size)) < 0)
			fb_warn("cannot overwrite the old content of '%s' with zeros: %s", cfg->device_path, strerror(-r));
	}
	json_object_put(copy);
}

static void post_report(json_object *config)
{
	json_object *v;
	if (!json_object_object_get_ex(config, "report_url", &v))
		return;
	_cleanup_free_ char *body = NULL, *err = NULL;
	if (fb_read(FB_STATUS_PATH, FB_CONFIG_MAX, &body, NULL) < 0)
		return;
	if (fb_post_json(json_object_get_string(v), body, 3, &err) < 0)
		fb_warn("cannot send the report to 'report_url', ignoring: %s", err ? err : "failed");
}

static int run_invalid(struct engine *e, struct fb_config *cfg, int cr, size_t n)
{
	bool later = cr == -EAGAIN;
	_cleanup_free_ char *msg = fb_strdupf("config %s: %s", later ? "unavailable" : "invalid",
					      cfg->error ? cfg->error : strerror(-cr));
	fb_error("%s", msg ? msg : "config invalid");
	e->status.status = later ? FB_STATE_PENDING : FB_STATE_FAILED;
	e->status.config_error = msg ? strdup(msg) : NULL;
	for (size_t i = 0; i < n; i++) {
		if (e->o->dry_run)
			plan(e->status.steps[i].name, "skip", msg);
		else
			step_end(e, i, later ? FB_STATE_PENDING : FB_STATE_SKIPPED, msg);
	}
	return later ? FB_EXIT_FAILED : FB_EXIT_USAGE;
}

int fb_engine_run(const struct fb_step *const *steps, size_t n, const struct fb_run_opts *o)
{
	double t0 = now_seconds(), ext0 = fb_run_seconds();
	struct engine e = { .o = o };
	struct fb_config cfg = { 0 };
	int exit_code = FB_EXIT_OK;

	e.status.started = fb_wall_now();
	e.status.status = FB_STATE_RUNNING;
	e.status.steps = calloc(n ? n : 1, sizeof(*e.status.steps));
	if (!e.status.steps)
		return FB_EXIT_FAILED;
	e.status.n_steps = n;
	for (size_t i = 0; i < n; i++) {
		e.status.steps[i].name = steps[i]->name;
		e.status.steps[i].state = FB_STATE_NOT_RUN;
	}
	/* "running" from the start (the config may take a while to fetch): status --wait waits
	 * for this run, not the last one's result. */
	if (!o->dry_run)
		fb_status_write(&e.status);

	int cr = fb_config_load(&cfg);
	fb_report_set_secrets(cfg.secrets);
	enum fb_state final = FB_STATE_OK;
	bool pending = false, stopped = false, reboot = false, degraded = false, same = false;
	char hash[65];
	struct fb_ctx ctx = { .config = cfg.merged };
	if (cr < 0) {
		exit_code = run_invalid(&e, &cfg, cr, n);
		final = cr == -EAGAIN ? FB_STATE_PENDING : FB_STATE_FAILED;
		goto finish;
	}

	if (fb_config_hash(cfg.merged, hash) < 0) {
		exit_code = FB_EXIT_FAILED;
		goto out;
	}
	state_load(&e, hash, &same);
	json_object_object_add(e.state, "status", json_object_new_string(fb_state_name(FB_STATE_RUNNING)));

	for (size_t i = 0; i < n; i++) {
		const struct fb_step *s = steps[i];
		json_object *section = NULL;
		bool enabled, required;
		step_options(cfg.merged, s, &enabled, &required);
		if (s->config_key)
			json_object_object_get_ex(cfg.merged, s->config_key, &section);
		int prev = state_of(&e, s->name, NULL);
		const char *why = NULL;
		if (stopped)
			why = "not run: a required step failed";
		else if (!enabled)
			why = "disabled in the config";
		else if (s->needs_config && !section)
			why = "not configured";
		bool same_done = !why && same &&
				 (prev == FB_STATE_OK || prev == FB_STATE_SKIPPED || prev == FB_STATE_DEGRADED);
		if (same_done) {
			why = prev == FB_STATE_DEGRADED ? "already done (degraded)" : "already done";
			degraded |= prev == FB_STATE_DEGRADED;
		}
		if (why) {
			if (o->dry_run) {
				plan(s->name, "skip", why);
				continue;
			}
			/* A step done before keeps its state ("degraded" stays degraded). */
			if (!stopped && !same_done && prev != FB_STATE_SKIPPED)
				state_put(&e, s->name, FB_STATE_SKIPPED, 0);
			step_end_mem(&e, i, same_done && prev == FB_STATE_DEGRADED ? FB_STATE_DEGRADED : FB_STATE_SKIPPED, why);
			continue;
		}
		enum fb_state st = run_step(&e, i, s, section, &ctx, prev);
		if (st == FB_STATE_PENDING)
			pending = true;
		else if (st == FB_STATE_REBOOT) {
			reboot = true;
			break;
		} else if (st == FB_STATE_FAILED) {
			degraded = true;
			stopped = required;
		} else if (st == FB_STATE_DEGRADED)
			degraded = true;
	}
	final = reboot     ? FB_STATE_REBOOT
		: stopped  ? FB_STATE_FAILED
		: degraded ? FB_STATE_DEGRADED
		: pending  ? FB_STATE_PENDING
			   : FB_STATE_OK;
	exit_code = final == FB_STATE_OK || reboot ? FB_EXIT_OK : FB_EXIT_FAILED;
	if (!o->dry_run) {
		json_object_object_add(e.state, "status", json_object_new_string(fb_state_name(final)));
		state_write(&e);
	}

finish:
	e.status.status = final;
	e.status.finished = fb_wall_now();
	e.status.external_seconds = fb_run_seconds() - ext0;
	e.status.own_seconds = now_seconds() - t0 - e.status.external_seconds;
	if (o->dry_run)
		goto out;
	fb_status_write(&e.status);
	if (!reboot)
		fb_report_done(final == FB_STATE_PENDING ? FB_STATE_DEGRADED : final, n, now_seconds() - t0);
	if (cr < 0)
		goto out; /* the unit stays enabled: a fixed device.json or the network is tried next boot */
	post_report(cfg.merged);
	if (final == FB_STATE_OK)
		scrub_device(&cfg);
	if (reboot) {
		power("reboot");
		goto out;
	}
	if (!pending)
		disable_unit();
	json_object *fin;
	if ((final == FB_STATE_OK || final == FB_STATE_DEGRADED) && json_object_object_get_ex(cfg.merged, "finally", &fin) &&
	    !STREQ(json_object_get_string(fin), "none"))
		power(json_object_get_string(fin));

out:
	fb_report_set_secrets(NULL);
	for (size_t i = 0; i < n; i++)
		free(e.status.steps[i].message);
	free(e.status.steps);
	free(e.status.config_error);
	json_object_put(e.state);
	fb_config_done(&cfg);
	return exit_code;
}
