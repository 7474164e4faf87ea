/* pmoves-firstboot status on fixture status.json files: the table's columns, and --wait with a
 * background writer standing in for a run in progress. */
#include "test-fb-lib.h"

#include <json-c/json.h>
#include <signal.h>
#include <time.h>

#define STATUS_REL "var/lib/pmoves/firstboot/status.json"

/* status.json with STATUS and the steps NAME/STATE pairs in STEPS ("a=ok,b=pending"). */
static char *status_json(const char *status, const char *steps)
{
	char *out = t_strf("{\n  \"status\": \"%s\",\n  \"started\": \"2025-01-01T10:00:00.000Z\",\n  \"finished\": %s,\n"
			   "  \"own_ms\": 12,\n  \"external_ms\": 340,\n  \"steps\": [",
			   status, STREQ(status, "running") ? "null" : "\"2025-01-01T10:00:05.000Z\"");
	char *list = strdup(steps), *save = NULL;
	bool first = true;
	for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(p, '=');
		*eq = '\0';
		char *more = t_strf("%s%s\n    { \"name\": \"%s\", \"state\": \"%s\", \"started\": null, \"finished\": null,"
				    " \"duration_ms\": %s, \"message\": \"%s message\" }",
				    out, first ? "" : ",", p, eq + 1, STREQ(eq + 1, "not-run") ? "null" : "1234", p);
		free(out);
		out = more;
		first = false;
	}
	char *done = t_strf("%s\n  ]\n}\n", out);
	free(out), free(list);
	return done;
}

static struct t_result status(const char *root, const char *a, const char *b, const char *c)
{
	char *argv[] = { "pmoves-firstboot", "status", "--root", (char *)root, (char *)a, (char *)b, (char *)c, NULL };
	return t_fb(root, NULL, argv);
}

/* The column where the first occurrence of WORD starts on the line of OUT that begins with
 * PREFIX, or -1. */
static long column_of(const char *out, const char *prefix, const char *word)
{
	for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		size_t n = strcspn(l, "\n");
		if (strncmp(l, prefix, strlen(prefix)))
			continue;
		const char *w = strstr(l + strlen(prefix), word);
		return w && w < l + n ? (long)(w - l) : -1;
	}
	return -1;
}

static void test_table(void)
{
	char *root = t_tree();
	char *js = status_json("degraded", "hostname=ok,iommu=skipped,proxmox-kernel=reboot,proxmox-bridge=pending,proxmox-vms=not-run");
	t_write(root, STATUS_REL, js);
	struct t_result r = status(root, NULL, NULL, NULL);
	tap_is_int(r.status, 1, "status: degraded exits 1");
	long st = column_of(r.out, "STEP ", "STATE"), ms = column_of(r.out, "STEP ", "MS"), msg = column_of(r.out, "STEP ", "MESSAGE");
	static const char *const rows[][2] = { { "hostname ", "ok" },           { "iommu ", "skipped" },
						{ "proxmox-kernel ", "reboot" }, { "proxmox-bridge ", "pending" },
						{ "proxmox-vms ", "not-run" } };
	bool aligned = st > 0 && msg > st;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		char *m = t_strf("%.*s message", (int)strcspn(rows[i][0], " "), rows[i][0]);
		aligned &= column_of(r.out, rows[i][0], rows[i][1]) == st && column_of(r.out, rows[i][0], m) == msg;
		free(m);
	}
	if (!tap_ok(aligned, "status: STATE and MESSAGE in the same columns on every line, proxmox-kernel and proxmox-bridge too"))
		tap_diag("output:\n%s", r.out);
	tap_ok(column_of(r.out, "proxmox-kernel ", "reboot") == (long)strlen("proxmox-kernel") + 1 && ms > st,
	       "status: the name column as wide as the longest name, one space after it");
	tap_contains(r.out, "proxmox-vms    not-run         -  proxmox-vms message\n", "status: a step not run has no time");
	t_result_free(&r);
	free(js);
	t_cleanup(root);
}

/* A stand-in for a run in progress: after DELAY seconds, TEXT becomes ROOT's status.json. */
static pid_t writer(const char *root, double delay, const char *text)
{
	char *path = t_strf("%s/" STATUS_REL, root);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct timespec ts = { .tv_sec = (time_t)delay, .tv_nsec = (long)((delay - (double)(time_t)delay) * 1e9) };
		nanosleep(&ts, NULL);
		char *dir = strndup(path, (size_t)(strrchr(path, '/') - path));
		mkdir_p(dir, 0755);
		_exit(write_file_atomic(path, text, strlen(text), 0644) < 0 ? 1 : 0);
	}
	free(path);
	return pid;
}

static bool writer_done(pid_t pid)
{
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_wait(void)
{
	char *root = t_tree();
	char *running = status_json("running", "hostname=ok,tunnel=not-run,proxmox-kernel=not-run"),
	     *ended = status_json("degraded", "hostname=ok,tunnel=pending,proxmox-kernel=failed");
	t_write(root, STATUS_REL, running);

	/* A run in progress that ends (degraded, with a pending step) 1.5 s later. */
	pid_t w = writer(root, 1.5, ended);
	double t0 = now_seconds();
	struct t_result r = status(root, "--wait", "--timeout", "30");
	double waited = now_seconds() - t0;
	bool wrote = writer_done(w);
	tap_ok(wrote && r.status == 1 && strstr(r.out, "status: degraded\n") && strstr(r.out, "proxmox-kernel failed ") &&
		       waited >= 1.4 && waited < 10,
	       "status --wait: waits while the run is running, returns when it has ended (%.1f s), exit as status", waited);
	if (r.status != 1 || !strstr(r.out, "status: degraded"))
		tap_diag("exit %d, out '%s', err '%s'", r.status, r.out, r.err);
	t_result_free(&r);

	/* Ended with pending steps: nothing to wait for (they finish on a later run). */
	char *pending = status_json("pending", "hostname=ok,tunnel=pending");
	t_write(root, STATUS_REL, pending);
	t0 = now_seconds();
	r = status(root, "--wait", NULL, NULL);
	waited = now_seconds() - t0;
	tap_ok(r.status == 1 && strstr(r.out, "status: pending\n") && waited < 1, "status --wait: a pending run has ended: at once, exit 1");
	t_result_free(&r);

	/* Still running at the deadline: exit 4, the last status shown. */
	t_write(root, STATUS_REL, running);
	t0 = now_seconds();
	r = status(root, "--wait", "--timeout", "1");
	waited = now_seconds() - t0;
	tap_ok(r.status == 4 && waited >= 1 && waited < 5 && strstr(r.out, "status: running\n") &&
		       strstr(r.err, "pmoves-firstboot: timed out after 1 s waiting for the first-boot run to end\n"),
	       "status --wait --timeout 1: still running: exit 4 after %.1f s, with the last status", waited);
	if (r.status != 4)
		tap_diag("exit %d, err '%s'", r.status, r.err);
	t_result_free(&r);

	/* No status file yet (the first run has not started): waits for one; --json prints it. */
	char *p = t_strf("%s/" STATUS_REL, root), *ok = status_json("ok", "hostname=ok,tunnel=ok");
	unlink(p);
	w = writer(root, 1.0, running);
	pid_t w2 = writer(root, 2.0, ok);
	char *argv[] = { "pmoves-firstboot", "status", "--json", "--wait", "--timeout", "30", "--root", root, NULL };
	t0 = now_seconds();
	r = t_fb(root, NULL, argv);
	waited = now_seconds() - t0;
	wrote = writer_done(w) && writer_done(w2);
	json_object *want = json_tokener_parse(ok);
	char *want_text = t_strf("%s\n", json_object_to_json_string_ext(want, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
										   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(want);
	tap_ok(wrote && r.status == 0 && r.out && STREQ(r.out, want_text) && waited >= 1.9,
	       "status --wait --json: waits for the file, then for the run, prints status.json as the engine writes it, exit 0");
	if (r.out && !STREQ(r.out, want_text))
		tap_diag("got '%s'", r.out);
	free(want_text);
	t_result_free(&r);
	unlink(p);
	r = status(root, "--wait", "--timeout", "0");
	tap_ok(r.status == 4 && strstr(r.err, "timed out after 0 s waiting for the first-boot run to end (no run has started yet)"),
	       "status --wait --timeout 0 without any status file: exit 4, says no run has started");
	t_result_free(&r);

	/* Not a status file: an error at once, not a wait. */
	t_write(root, STATUS_REL, "[1, 2]\n");
	r = status(root, "--wait", "--timeout", "30");
	tap_ok(r.status == 1 && strstr(r.err, "is not a status file"), "status --wait: a file that is not a status file: exit 1 at once");
	t_result_free(&r);

	/* Usage. */
	r = status(root, "--timeout", "5", NULL);
	tap_is_int(r.status, 2, "status --timeout without --wait: bad usage");
	t_result_free(&r);
	r = status(root, "--wait", "--timeout", "5s");
	tap_ok(r.status == 2 && strstr(r.err, "'5s' is not a timeout"), "status --timeout 5s: not a number of seconds");
	t_result_free(&r);
	free(running), free(ended), free(pending), free(p), free(ok);
	t_cleanup(root);
}

/* The engine writes status.json "running" when a run starts: status --wait never takes the
 * last run's result for this one's. */
static void test_run_writes_running(void)
{
	char *root = t_tree();
	char *old = status_json("ok", "hostname=ok");
	t_write(root, STATUS_REL, old);
	t_write(root, "etc/pmoves/firstboot.json", "{\"hostname\": \"node1\", \"steps\": {\"growfs\": {\"enabled\": false}}}");
	/* A power cut while the hostname step applies. */
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_CRASH_AFTER=hostname:running");
	char *now = t_read(root, STATUS_REL);
	tap_ok(r.status == 99 && now && strstr(now, "\"status\": \"running\""), "a run in progress: status.json says running");
	t_result_free(&r);
	r = status(root, "--wait", "--timeout", "1");
	tap_is_int(r.status, 4, "... so status --wait waits for it (here until its timeout)");
	t_result_free(&r);
	r = t_run(root, NULL);
	t_result_free(&r);
	r = status(root, "--wait", "--timeout", "5");
	tap_ok(r.status == 0 && strstr(r.out, "status: ok\n"), "the next run ends: status --wait returns ok");
	t_result_free(&r);
	free(old), free(now);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files root-owned");
	test_table();
	test_wait();
	test_run_writes_running();
	return tap_done();
}
