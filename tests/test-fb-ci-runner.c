/* The ci-runner step and `pmoves-firstboot ci-runner-jit` on fixture trees. GitHub and the
 * Actions runner cannot be used here: tests/fixtures/standins/github-api.py stands in for
 * GitHub's generate-jitconfig endpoint on 127.0.0.1 (it checks the bearer token, the headers
 * and the body GitHub documents), and the runner is a stand-in run.sh. Verified against the
 * stand-ins only. */
#include "fb-cmd.h"
#include "run.h"
#include "test-fb-lib.h"

#include <json-c/json.h>
#include <signal.h>

#define OTHERS_OFF "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"
#define TOKEN "github_pat_11AAAAAAA0aBcDeFgHiJkL_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU"
#define UID 996

static char srv[] = "/tmp/test-fb-ci-srv-XXXXXX";
static pid_t srv_pid;
static int port;

static void server_stop(void)
{
	if (srv_pid > 0) {
		kill(srv_pid, SIGTERM);
		waitpid(srv_pid, NULL, 0);
		srv_pid = 0;
	}
	rm_rf(srv);
}

static void server_start(void)
{
	const char *script = "tests/fixtures/standins/github-api.py";
	char *py = NULL;
	if (access(script, R_OK) < 0)
		tap_skip_all("tests/fixtures/standins/github-api.py not found (run from the top of the tree)");
	if (find_program("python3", &py) < 0)
		tap_skip_all("python3 is not installed");
	if (!mkdtemp(srv))
		abort();
	char *pf = t_strf("%s/port", srv), *log = t_strf("%s/log", srv);
	srv_pid = fork();
	if (srv_pid == 0) {
		execl(py, "python3", script, "--port-file", pf, "--log", log, "--token", TOKEN, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && !port; i++) {
		char *s = t_read(pf, NULL);
		uint64_t v;
		if (s && (s[strcspn(s, "\n")] = '\0', parse_u64(s, &v) == 0))
			port = (int)v;
		free(s);
		if (!port)
			usleep(100000);
	}
	free(pf), free(log), free(py);
	if (!port) {
		server_stop();
		tap_skip_all("the stand-in GitHub API did not start");
	}
}

static char *server_log_take(void)
{
	char *p = t_strf("%s/log", srv), *text = t_read(p, NULL);
	unlink(p);
	free(p);
	return text ? text : strdup("");
}

/* A tree with the user (as systemd-sysusers would make it), a hostname, the stand-in runner,
 * and the config: ci_runner with MORE. */
static char *ci_tree(const char *more, bool runner)
{
	char *root = t_tree();
	t_write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\nci-runner:x:996:996:GitHub Actions runner:/home/ci-runner:/bin/bash\n");
	t_write(root, "etc/group", "root:x:0:\nci-runner:x:996:\n");
	t_write(root, "etc/hostname", "ci-7\n");
	if (runner) {
		t_write(root, "home/ci-runner/actions-runner/run.sh", "#!/bin/sh\n# stand-in\n");
		t_write(root, "home/ci-runner/actions-runner/bin/Runner.Listener", "stand-in\n");
	}
	char *cfg = t_strf("{" OTHERS_OFF ", \"ci_runner\": {%s}}", more);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
	return root;
}

static struct t_result jit(const char *root)
{
	char *argv[] = { "pmoves-firstboot", "ci-runner-jit", "--root", (char *)root, NULL };
	return t_fb(root, NULL, argv);
}

static void test_config(void)
{
	static const struct {
		const char *more, *want;
	} bad[] = {
		{ "\"url\": \"http://github.com/pmoves\"", "is not an organization or repository URL" },
		{ "\"url\": \"https://github.com/a/b/c\"", "is not an organization or repository URL" },
		{ "\"url\": \"https://github.com/pmoves\", \"api_url\": \"http://192.0.2.7\"", "is not an API URL" },
		{ "\"url\": \"https://github.com/pmoves\", \"api_url\": \"https://api.github.com/\"", "is not an API URL" },
		{ "\"url\": \"https://github.com/pmoves\", \"token\": \"short-and-wrong\"", "not a GitHub token" },
		{ "\"url\": \"https://github.com/pmoves\", \"labels\": [\"gpu\", \"gpu\"]", "label 'gpu' is listed twice" },
		{ "\"url\": \"https://github.com/pmoves\", \"runner_group_id\": 0", "the runner group is a whole number" },
		{ "\"token\": \"" TOKEN "\"", ".ci_runner.url" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *root = ci_tree(bad[i].more, true);
		struct t_result r = t_run(root, NULL);
		tap_ok(r.status == FB_EXIT_USAGE, "config %zu: refused", i);
		tap_contains(r.err, bad[i].want, "config %zu: %s", i, bad[i].want);
		tap_ok(!strstr(r.err ? r.err : "", "short-and-wrong") && !strstr(r.out ? r.out : "", "short-and-wrong"),
		       "config %zu: a bad token is not shown", i);
		t_result_free(&r);
		t_cleanup(root);
	}
}

static void test_apply(void)
{
	char *api = t_strf("\"url\": \"https://github.com/pmoves-fleet\", \"api_url\": \"http://127.0.0.1:%d\", "
			   "\"token\": \"" TOKEN "\", \"labels\": [\"self-hosted\", \"gpu\"], \"runner_group_id\": 3",
			   port);
	char *root = ci_tree(api, false);
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=ci-runner state=pending the Actions runner is not installed yet "
			    "(/home/ci-runner/actions-runner/run.sh: an artifact of kind tar, target /home/ci-runner/actions-runner)",
		     "no runner: pending, saying what is missing");
	t_result_free(&r);
	t_write(root, "home/ci-runner/actions-runner/run.sh", "#!/bin/sh\n# stand-in\n");
	t_write(root, "home/ci-runner/actions-runner/bin/Runner.Listener", "stand-in\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=ci-runner state=pending the runner is set up; it registers with GitHub when its service starts",
		     "a tree: set up, pending (the service registers on the machine)");
	char *status = t_read(root, "var/lib/pmoves/firstboot/status.json");
	tap_ok(!strstr(r.out, TOKEN) && !strstr(r.err, TOKEN) && status && !strstr(status, TOKEN),
	       "the token is in no output and not in status.json");
	struct stat st = t_stat(root, "etc/pmoves/ci-runner/token");
	tap_ok(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600 && st.st_uid == 0, "the token: /etc/pmoves/ci-runner/token, 0600 root");
	char *tok = t_read(root, "etc/pmoves/ci-runner/token");
	tap_is_str(tok, TOKEN, "... holding the token");
	char *settings = t_read(root, "etc/pmoves/ci-runner/runner.json");
	char *want = t_strf("\"endpoint\": \"http://127.0.0.1:%d/orgs/pmoves-fleet/actions/runners/generate-jitconfig\"", port);
	tap_contains(settings, want, "runner.json: the organization's generate-jitconfig endpoint");
	tap_contains(settings, "\"name_prefix\": \"ci-7\"", "runner.json: runners are named after the machine");
	tap_contains(settings, "\"runner_group_id\": 3", "runner.json: the runner group");
	char *unit = t_read(root, "etc/systemd/system/pmoves-ci-runner.service");
	tap_contains(unit, "ExecStartPre=+/usr/bin/pmoves-firstboot ci-runner-jit\n", "unit: a registration before every start, as root");
	tap_contains(unit, "EnvironmentFile=-/run/pmoves-ci-runner/jit.env\nExecStart=/home/ci-runner/actions-runner/run.sh\n",
		     "unit: the runner takes its config from the environment, not its command line");
	tap_contains(unit, "User=ci-runner\n", "unit: as the user ci-runner");
	tap_contains(unit, "Restart=always\n", "unit: started again after each job");
	st = t_stat(root, "home/ci-runner/actions-runner/bin/Runner.Listener");
	tap_ok(st.st_uid == UID, "the runner's directory is the user's (it writes _diag and _work there)");
	char *calls = t_read(t_beside(root, "calls"), NULL);
	tap_contains(calls, "enable pmoves-ci-runner.service\n", "pmoves-ci-runner.service enabled");
	free(status), free(tok), free(settings), free(want), free(unit), free(calls);
	t_result_free(&r);

	/* The registration, as the service's ExecStartPre runs it. */
	server_log_take();
	r = jit(root);
	tap_is_int(r.status, 0, "ci-runner-jit: registered (exit 0)");
	tap_contains(r.out, "pmoves-firstboot: ci-runner: runner 'ci-7-", "ci-runner-jit: says the runner's name");
	tap_contains(r.out, "(id 1) registered just in time for one job", "... and its ID");
	char *log = server_log_take();
	tap_contains(log, "\"path\": \"/orgs/pmoves-fleet/actions/runners/generate-jitconfig\", \"auth\": \"ok\", "
			  "\"accept\": \"application/vnd.github+json\", \"api_version\": \"2022-11-28\"",
		     "the API got the bearer token, GitHub's media type and API version");
	tap_contains(log, "\"runner_group_id\": 3, \"labels\": [\"self-hosted\", \"gpu\"], \"work_folder\": \"_work\"}",
		     "the body: the group, the labels, the work folder");
	st = t_stat(root, "run/pmoves-ci-runner/jit.env");
	tap_ok(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600 && st.st_uid == 0, "the config: /run/pmoves-ci-runner/jit.env, 0600 root");
	char *env = t_read(root, "run/pmoves-ci-runner/jit.env");
	tap_ok(env && str_starts_with(env, "ACTIONS_RUNNER_INPUT_JITCONFIG=ey") && env[strlen(env) - 1] == '\n',
	       "... ACTIONS_RUNNER_INPUT_JITCONFIG=<the encoded config>");
	tap_ok(env && !strstr(r.out, env + 31) && !strstr(r.err, TOKEN) && !strstr(r.out, TOKEN),
	       "neither the config nor the token is printed");
	char *first = env ? strdup(env) : NULL;
	free(env), free(log);
	t_result_free(&r);
	r = jit(root);
	env = t_read(root, "run/pmoves-ci-runner/jit.env");
	tap_ok(r.status == 0 && strstr(r.out, "(id 2)") && env && first && !STREQ(env, first),
	       "a second start: a new registration, another config");
	free(env), free(first);
	t_result_free(&r);

	/* A token GitHub refuses: no config left behind. */
	t_write(root, "etc/pmoves/ci-runner/token", "ghp_wrongwrongwrongwrongwrongwrong0000\n");
	r = jit(root);
	tap_is_int(r.status, 1, "a refused token: exit 1");
	tap_contains(r.err, "HTTP 401: Bad credentials (the token is wrong or expired)", "... saying GitHub's reason");
	tap_ok(!strstr(r.err, "ghp_wrong") && !t_exists(root, "run/pmoves-ci-runner/jit.env"),
	       "... the token not shown, the last config gone");
	t_result_free(&r);
	t_cleanup(root);
	free(api);

	/* A repository's runner; the token kept from an earlier run when the config no longer
	 * has it (scrubbed from device.json). */
	api = t_strf("\"url\": \"https://github.com/pmoves/fleet-ci\", \"api_url\": \"http://127.0.0.1:%d\", \"token\": \"" TOKEN "\"", port);
	root = ci_tree(api, true);
	r = t_run(root, NULL);
	t_result_free(&r);
	free(api);
	api = t_strf("{" OTHERS_OFF ", \"ci_runner\": {\"url\": \"https://github.com/pmoves/fleet-ci\", \"api_url\": \"http://127.0.0.1:%d\"}}", port);
	t_write(root, "etc/pmoves/firstboot.json", api);
	server_log_take();
	r = jit(root);
	log = server_log_take();
	tap_ok(r.status == 0 && strstr(log, "\"path\": \"/repos/pmoves/fleet-ci/actions/runners/generate-jitconfig\", \"auth\": \"ok\""),
	       "a repository's runner: /repos/OWNER/REPO/..., with the kept token");
	tap_contains(log, "\"labels\": [\"self-hosted\", \"linux\", \"pmoves\"]", "default labels: self-hosted, linux, pmoves");
	free(log);
	t_result_free(&r);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=ci-runner state=skipped already done", "without a token in the config: the kept one does");
	t_result_free(&r);
	char *tok_path = t_strf("%s/etc/pmoves/ci-runner/token", root);
	unlink(tok_path);
	free(tok_path);
	free(api);
	api = t_strf("{" OTHERS_OFF ", \"ci_runner\": {\"url\": \"https://github.com/pmoves/fleet-ci\", \"api_url\": \"http://127.0.0.1:%d\", "
		     "\"labels\": [\"x\"]}}", port);
	t_write(root, "etc/pmoves/firstboot.json", api);
	free(api);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=ci-runner state=failed no \"token\"", "no token anywhere: failed, saying so");
	t_result_free(&r);
	t_cleanup(root);

	/* A job of the runner's replaces its directory with a link, or hard-links a system file
	 * into it: the next apply gives nothing of the system's away. */
	api = t_strf("\"url\": \"https://github.com/pmoves\", \"token\": \"" TOKEN "\"");
	root = ci_tree(api, false);
	free(api);
	t_write(root, "etc/secret/keep", "root's\n");
	mkdir_p(t_strf("%s/home/ci-runner", root), 0755);
	char *lnk = t_strf("%s/home/ci-runner/actions-runner", root);
	tap_ok(symlink("/etc/secret", lnk) == 0, "the runner's directory replaced by a link to /etc/secret");
	t_write(root, "etc/secret/run.sh", "#!/bin/sh\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=ci-runner state=failed cannot give '/home/ci-runner/actions-runner' to 'ci-runner'",
		     "a link for the runner's directory: the step fails");
	tap_contains(r.out, "(a symbolic link on the way)", "... saying why");
	st = t_stat(root, "etc/secret/keep");
	tap_ok(st.st_uid == 0 && t_stat(root, "etc/secret").st_uid == 0, "... and /etc/secret stays root's");
	unlink(lnk);
	free(lnk);
	t_write(root, "home/ci-runner/actions-runner/run.sh", "#!/bin/sh\n");
	char *from = t_strf("%s/etc/passwd", root), *to = t_strf("%s/home/ci-runner/actions-runner/passwd", root);
	tap_ok(link(from, to) == 0, "a hard link to /etc/passwd in the runner's directory");
	t_write(root, "etc/pmoves/firstboot.json", "{" OTHERS_OFF ", \"ci_runner\": {\"url\": \"https://github.com/pmoves\", \"labels\": [\"y\"]}}");
	r = t_run(root, NULL);
	tap_contains(r.out, "(another user's, or a hard link)", "a hard link to a system file: refused");
	tap_ok(t_stat(root, "etc/passwd").st_uid == 0, "... /etc/passwd stays root's");
	free(from), free(to);
	t_result_free(&r);
	t_cleanup(root);

	/* Not set up: ci-runner-jit says what is missing. */
	root = ci_tree("\"url\": \"https://github.com/pmoves\"", true);
	r = jit(root);
	tap_is_int(r.status, FB_EXIT_MISSING, "ci-runner-jit before the step ran: exit 3");
	tap_contains(r.err, "the ci-runner step writes it", "... saying which step writes what is missing");
	t_result_free(&r);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files the user's");
	server_start();
	test_config();
	test_apply();
	server_stop();
	return tap_done();
}
