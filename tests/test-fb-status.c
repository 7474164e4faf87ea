/* pmoves-firstboot status on fixture status.json files: the table's columns, and --wait with a
 * background writer standing in for a run in progress. */
#include "test-fb-lib.h"

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

int main(void)
{
	test_table();
	return tap_done();
}
