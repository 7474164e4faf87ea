/* ci-runner: a self-hosted GitHub Actions runner, ephemeral: registered just in time for one
 * job, then gone, and registered again for the next.
 *
 *   - the Actions runner is an artifact (kind tar, target "runner_dir"); without its run.sh the
 *     step is pending. The runner writes into its own directory (_diag, _work): the directory
 *     becomes the user's;
 *   - a system user "ci-runner" (systemd-sysusers, /etc/sysusers.d/pmoves-ci-runner.conf);
 *   - a registration token expires an hour after it is made, so the config gives a longer-lived
 *     credential instead ("token": a fine-grained token that may administer the scope's
 *     self-hosted runners; a secret, kept in /etc/pmoves/ci-runner/token, 0600 root) and what
 *     to register ("url", the organization or repository; "labels"; "runner_group_id"), in
 *     /etc/pmoves/ci-runner/runner.json;
 *   - pmoves-ci-runner.service: before every start, as root, `pmoves-firstboot ci-runner-jit`
 *     asks GitHub's API for a just-in-time runner config (POST .../actions/runners/
 *     generate-jitconfig: a new runner named HOSTNAME-RANDOM, one job) and hands it to the
 *     runner in the environment (ACTIONS_RUNNER_INPUT_JITCONFIG, from a 0600 file in /run:
 *     never on a command line, where every user could read it); then run.sh as the user; after
 *     the job the runner exits, the file goes, and systemd starts it again;
 *   - on the running system once it has booted: the service active (the registration worked).
 * The tailnet side is the tailnet step's: an ephemeral key tagged tag:ci (the hub's "ci" key),
 * and the hub's ACL gives tag:ci what the fleet lets CI reach (docs/firstboot.md). */
#include "download.h"
#include "fb-cmd.h"
#include "fb-config.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <getopt.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define USER "ci-runner"
#define HOME_DIR "/home/ci-runner"
#define DEFAULT_RUNNER_DIR HOME_DIR "/actions-runner"
#define CONF_DIR "/etc/pmoves/ci-runner"
#define TOKEN CONF_DIR "/token"
#define SETTINGS CONF_DIR "/runner.json"
#define JIT_ENV "/run/pmoves-ci-runner/jit.env"
#define SYSUSERS "/etc/sysusers.d/pmoves-ci-runner.conf"
#define UNIT "/etc/systemd/system/pmoves-ci-runner.service"
#define SERVICE "pmoves-ci-runner.service"
#define DEFAULT_API "https://api.github.com"
#define TOKEN_MAX 256
#define JIT_MAX (64u << 10)
#define ANSWER_MAX (256u << 10)
#define RUNNER_DEPTH 16
#define START_WAIT 60

/* ---- config ---- */

static const struct fb_format fmt_scope = {
	.name = "ci_runner_url",
	.message = "'%s' is not an organization or repository URL (https://github.com/ORG or https://github.com/OWNER/REPO)",
	.pattern = "^https://[a-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100})?$",
};

static const struct fb_format fmt_token = {
	.name = "ci_runner_token",
	.message = "not a GitHub token (letters, digits and '_', 20 to 255 of them)",
	.pattern = "^[A-Za-z0-9_]{20,255}$",
};

static const struct fb_format fmt_label = {
	.name = "ci_runner_label",
	.message = "'%s' is not a runner label (letters, digits, '.', '_', '-'; at most 64)",
	.pattern = "^[A-Za-z0-9._-]{1,64}$",
};

static const struct fb_format fmt_group = {
	.name = "ci_runner_group",
	.message = "the runner group is a whole number from 1 to 2147483647 (1: the Default group)",
	.integer = true,
	.lo = 1,
	.hi = 2147483647,
};

/* https://, or http:// to this machine (a GitHub Enterprise Server behind a local proxy): the
 * token goes in every request. */
static int valid_api(struct fb_check *c, json_object *v)
{
	_cleanup_free_ char *why = NULL;
	const char *s = json_object_get_string(v);
	if (url_check(s, URL_HTTPS_OR_LOCAL, &why) < 0 || strlen(s) > 512 || s[strlen(s) - 1] == '/')
		return fb_bad(c, "'%s' is not an API URL (https://, or http:// on this machine; no '/' at the end): %s",
			      FB_SHOW(s), why ? why : "too long or ends in '/'");
	return 0;
}

static int valid_labels(struct fb_check *c, json_object *v)
{
	return fb_valid_unique(c, v, NULL, "label");
}

static const struct fb_field label_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_label, 0, 0 };
static const struct fb_field ci_fields[] = {
	{ "url", FB_T_STRING, NULL, NULL, &fmt_scope, FB_REQUIRED, 0 },
	{ "api_url", FB_T_STRING, NULL, valid_api, NULL, 0, 0 },
	/* Not FB_REQUIRED: scrubbed from device.json after a successful run. */
	{ "token", FB_T_STRING, NULL, NULL, &fmt_token, FB_SECRET, 0 },
	{ "labels", FB_T_ARRAY, &label_elem, valid_labels, NULL, 0, 32 },
	{ "runner_group_id", FB_T_SCALAR, NULL, NULL, &fmt_group, 0, 0 },
	{ "runner_dir", FB_T_STRING, NULL, fb_valid_user_dir, &fb_fmt_unit_path, 0, FB_PATH_MAX },
	FB_FIELDS_END,
};
static const struct fb_field ci_schema = { NULL, FB_T_OBJECT, ci_fields, NULL, NULL, 0, 0 };

struct conf {
	const char *token, *runner_dir;
	char *endpoint; /* API_URL/orgs/ORG/actions/runners/generate-jitconfig, or .../repos/OWNER/REPO/... */
	char *settings; /* SETTINGS' text */
	char *run_sh, *unit;
};

static void conf_done(struct conf *c)
{
	free(c->endpoint);
	free(c->settings);
	free(c->run_sh);
	free(c->unit);
}

/* The runner's name: the machine's, and a random part for each registration. */
static void name_prefix(char buf[64])
{
	char host[256];
	if (fb_read_line("/etc/hostname", host, sizeof(host)) < 0 || !*host || !fb_format_ok(&fmt_label, host))
		snprintf(host, sizeof(host), "pmoves");
	snprintf(buf, 64, "%.40s", host);
}

static int conf_load(json_object *section, struct conf *c)
{
	*c = (struct conf){
		.token = fb_json_str(section, "token", NULL),
		.runner_dir = fb_json_str(section, "runner_dir", DEFAULT_RUNNER_DIR),
	};
	const char *url = fb_json_str(section, "url", "");
	const char *host = str_starts_with(url, "https://") ? url + strlen("https://") : NULL;
	const char *path = host ? strchr(host, '/') : NULL; /* fmt_scope: there is one */
	if (!path++)
		return -EINVAL;
	const char *api = fb_json_str(section, "api_url", DEFAULT_API);
	c->endpoint = fb_strdupf("%s/%s/%s/actions/runners/generate-jitconfig", api, strchr(path, '/') ? "repos" : "orgs", path);
	c->run_sh = fb_strdupf("%s/run.sh", c->runner_dir);
	if (!c->endpoint || !c->run_sh)
		return -ENOMEM;

	_cleanup_(fb_json_putp) json_object *s = json_object_new_object();
	json_object *labels = NULL, *v;
	char prefix[64];
	name_prefix(prefix);
	if (json_object_object_get_ex(section, "labels", &v))
		labels = json_object_get(v);
	else if ((labels = json_object_new_array()))
		for (const char *const *l = (const char *const[]){ "self-hosted", "linux", "pmoves", NULL }; *l; l++)
			json_object_array_add(labels, json_object_new_string(*l));
	if (!s || !labels || json_object_object_add(s, "endpoint", json_object_new_string(c->endpoint)) < 0 ||
	    json_object_object_add(s, "name_prefix", json_object_new_string(prefix)) < 0 ||
	    json_object_object_add(s, "runner_group_id", json_object_new_int64(fb_json_int(section, "runner_group_id", 1))) < 0 ||
	    json_object_object_add(s, "labels", labels) < 0)
		return -ENOMEM;
	c->settings = fb_strdupf("%s\n", json_object_to_json_string_ext(s, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
									       JSON_C_TO_STRING_NOSLASHESCAPE));
	/* run.sh exits after the one job (or when its registration is refused): a new one each
	 * time. The config reaches the runner in its environment only. */
	c->unit = fb_strdupf("# Written by pmoves-firstboot (ci-runner step).\n"
			     "[Unit]\n"
			     "Description=GitHub Actions runner (ephemeral: registered just in time for each job)\n"
			     "After=network-online.target\n"
			     "Wants=network-online.target\n\n"
			     "[Service]\n"
			     "User=" USER "\n"
			     "Group=" USER "\n"
			     "WorkingDirectory=%s\n"
			     "ExecStartPre=+/usr/bin/pmoves-firstboot ci-runner-jit\n"
			     "EnvironmentFile=-" JIT_ENV "\n"
			     "ExecStart=%s\n"
			     "ExecStopPost=+/usr/bin/rm -f " JIT_ENV "\n"
			     "KillMode=mixed\n"
			     "Restart=always\n"
			     "RestartSec=10\n\n"
			     "[Install]\n"
			     "WantedBy=multi-user.target\n",
			     c->runner_dir, c->run_sh);
	return c->settings && c->unit ? 0 : -ENOMEM;
}

static const char sysusers[] = "# Written by pmoves-firstboot (ci-runner step).\n"
			       "u " USER " - \"GitHub Actions runner\" " HOME_DIR " /bin/bash\n";

/* 1: every file as the step writes it (the token's content is not compared: the config may
 * no longer have it), 0: not, -errno. */
static int files_in_place(const struct conf *c)
{
	int r;
	if ((r = fb_file_is(SYSUSERS, sysusers, strlen(sysusers))) <= 0 || (r = fb_file_is(UNIT, c->unit, strlen(c->unit))) <= 0 ||
	    (r = fb_file_is(SETTINGS, c->settings, strlen(c->settings))) <= 0)
		return r;
	_cleanup_close_ int fd = fb_open(TOKEN, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
	struct stat st;
	if (fd == -ENOENT)
		return 0;
	if (fd < 0 || fstat(fd, &st) < 0)
		return fd < 0 ? fd : -errno;
	return S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600 && st.st_uid == 0 && st.st_size > 0 &&
	       (!c->token || fb_file_is(TOKEN, c->token, strlen(c->token)) == 1);
}

/* The runner's directory and what is in it, the user's: it writes there. */
static int runner_give(const struct conf *c, char **ret_msg)
{
	unsigned uid, gid;
	int r = fb_user_ids(USER, &uid, &gid, ret_msg);
	if (r < 0)
		return r;
	/* Through no link: the user owns the home and the runner's directory. */
	_cleanup_close_ int home = fb_user_dir(HOME_DIR, uid, gid, 0750);
	_cleanup_close_ int dir = home < 0 ? home : fb_user_dir(c->runner_dir, uid, gid, 0755);
	if (dir < 0 || (r = fb_chown_tree(dir, uid, gid, RUNNER_DEPTH)) < 0) {
		r = dir < 0 ? dir : r;
		*ret_msg = fb_strdupf("cannot give '%s' to '" USER "': %s%s", home < 0 ? HOME_DIR : c->runner_dir, strerror(-r),
				      r == -ELOOP ? " (a symbolic link on the way)" : r == -EPERM ? " (another user's, or a hard link)" : "");
		return r;
	}
	return 0;
}

static int ci_check(const struct fb_ctx *ctx, json_object *section, char **ret_msg)
{
	(void)ctx, (void)ret_msg;
	_cleanup_(conf_done) struct conf c = { 0 };
	int r = conf_load(section, &c);
	if (r < 0 || (r = files_in_place(&c)) <= 0 || (r = fb_exists(c.run_sh)) <= 0)
		return r;
	return fb_unit_running(SERVICE);
}

static enum fb_result ci_apply(const struct fb_ctx *ctx, json_object *section, char **ret_msg)
{
	(void)ctx;
	_cleanup_(conf_done) struct conf c = { 0 };
	int r = conf_load(section, &c);
	if (r < 0)
		return FB_FAILED;
	if (!c.token && (r = fb_exists(TOKEN)) != 1) {
		*ret_msg = strdup("no \"token\" (a GitHub token that may administer the scope's self-hosted runners) and "
				  "none kept in " TOKEN " from an earlier run");
		return FB_FAILED;
	}
	if ((c.token && (r = fb_write(TOKEN, c.token, strlen(c.token), 0600, 0, 0)) < 0) ||
	    (r = fb_write(SETTINGS, c.settings, strlen(c.settings), 0644, 0, 0)) < 0 ||
	    (r = fb_write(UNIT, c.unit, strlen(c.unit), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write the runner's files: %s", strerror(-r));
		return FB_FAILED;
	}
	if ((r = fb_exists(c.run_sh)) != 1) {
		*ret_msg = fb_strdupf("the Actions runner is not installed yet (%s: an artifact of kind tar, target %s)", c.run_sh,
				      c.runner_dir);
		return r < 0 ? FB_FAILED : FB_PENDING;
	}
	if (fb_sysusers(SYSUSERS, sysusers, ret_msg) < 0)
		return FB_FAILED;
	if (!fb_dry_run() && runner_give(&c, ret_msg) < 0)
		return FB_FAILED;
	if (fb_unit_enable(SERVICE, true, ret_msg) < 0)
		return FB_FAILED;
	if (!fb_live() || fb_dry_run()) {
		*ret_msg = strdup("the runner is set up; it registers with GitHub when its service starts");
		return fb_live() ? FB_OK : FB_PENDING;
	}
	if (fb_system_booting()) {
		*ret_msg = strdup("the runner starts once the boot is done: the next run checks it");
		return FB_PENDING;
	}
	for (unsigned t = 0; t < START_WAIT; t++) {
		if ((r = fb_unit_running(SERVICE)) != 0)
			break;
		sleep(1);
	}
	if (r <= 0) {
		*ret_msg = strdup(SERVICE " is not running: its registration with GitHub failed (journalctl -u " SERVICE ")");
		return FB_FAILED;
	}
	*ret_msg = fb_strdupf("an ephemeral runner registered just in time for each job, from %s", c.endpoint);
	return FB_OK;
}

const struct fb_step step_ci_runner = {
	.name = "ci-runner",
	.config_key = "ci_runner",
	.schema = &ci_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = ci_check,
	.apply = ci_apply,
};

/* ---- pmoves-firstboot ci-runner-jit: one just-in-time registration ---- */

static int jit_usage(FILE *f, int status)
{
	fprintf(f, "usage: %s ci-runner-jit [--root DIR]\n\n"
		   "Register one ephemeral GitHub Actions runner just in time (for pmoves-ci-runner.service,\n"
		   "before each start): ask GitHub's API for a runner config with the token in " TOKEN "\n"
		   "and the settings in " SETTINGS ", and write it to " JIT_ENV " (0600) for the\n"
		   "runner's environment. Prints the runner's name and ID, never the config or the token.\n"
		   "exit status: 0 registered, 1 refused or unreachable, 2 bad usage, 3 not set up\n",
		FB_NAME);
	return status;
}

/* Why GitHub said no: its "message", or the status. */
static char *api_error(long status, const char *body)
{
	_cleanup_(fb_json_putp) json_object *o = body && *body ? json_tokener_parse(body) : NULL;
	const char *m = fb_json_str(o, "message", NULL);
	_cleanup_free_ char *shown = m ? str_printable(m, strlen(m) > 200 ? 200 : strlen(m), NULL) : NULL;
	return fb_strdupf("HTTP %ld%s%s%s", status, shown ? ": " : "", shown ? shown : "",
			  status == 401 ? " (the token is wrong or expired)"
			  : status == 403 || status == 404 ? " (the token may not administer this scope's runners)"
			  : status == 422 ? " (the runner group or the labels are refused)"
					  : "");
}

static int jit_register(void)
{
	_cleanup_free_ char *settings_text = NULL, *token = NULL, *auth = NULL, *answer = NULL, *error = NULL;
	size_t len, tlen;
	/* A config is for one registration: never one left from an earlier start. */
	int r = fb_remove(JIT_ENV);
	if (r < 0) {
		fb_error("cannot remove '%s': %s", JIT_ENV, strerror(-r));
		return FB_EXIT_FAILED;
	}
	r = fb_read(SETTINGS, 64u << 10, &settings_text, &len);
	if (r < 0 || (r = fb_read(TOKEN, TOKEN_MAX + 2, &token, &tlen)) < 0) {
		fb_error("cannot read '%s': %s (the ci-runner step writes it)", settings_text ? TOKEN : SETTINGS, strerror(-r));
		return FB_EXIT_MISSING;
	}
	while (tlen && (token[tlen - 1] == '\n' || token[tlen - 1] == '\r'))
		token[--tlen] = '\0';
	_cleanup_(fb_json_putp) json_object *s = json_tokener_parse(settings_text);
	const char *endpoint = fb_json_str(s, "endpoint", NULL), *prefix = fb_json_str(s, "name_prefix", "pmoves");
	json_object *labels = NULL;
	if (s)
		json_object_object_get_ex(s, "labels", &labels);
	if (!endpoint || !json_object_is_type(labels, json_type_array) || !fb_format_ok(&fmt_token, token) ||
	    url_check(endpoint, URL_HTTPS_OR_LOCAL, NULL) < 0) {
		fb_error("'%s' or '%s' is not as the ci-runner step writes it", SETTINGS, TOKEN);
		explicit_bzero(token, tlen);
		return FB_EXIT_MISSING;
	}
	uint8_t rnd[4];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return FB_EXIT_FAILED;
	char name[80];
	snprintf(name, sizeof(name), "%s-%02x%02x%02x%02x", prefix, rnd[0], rnd[1], rnd[2], rnd[3]);
	_cleanup_(fb_json_putp) json_object *body = json_object_new_object();
	if (!body || json_object_object_add(body, "name", json_object_new_string(name)) < 0 ||
	    json_object_object_add(body, "runner_group_id", json_object_new_int64(fb_json_int(s, "runner_group_id", 1))) < 0 ||
	    json_object_object_add(body, "labels", json_object_get(labels)) < 0 ||
	    json_object_object_add(body, "work_folder", json_object_new_string("_work")) < 0)
		return FB_EXIT_FAILED;
	auth = fb_strdupf("Authorization: Bearer %s", token);
	explicit_bzero(token, tlen);
	if (!auth)
		return FB_EXIT_FAILED;
	const char *const headers[] = { auth, "Accept: application/vnd.github+json", "X-GitHub-Api-Version: 2022-11-28", NULL };
	struct download_opts o = { .connect_timeout = 15, .timeout = 60, .user_agent = "pmoves-firstboot", .headers = headers };
	long status = 0;
	r = http_request("POST", endpoint, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), ANSWER_MAX, &o,
			 &status, &answer, NULL, &error);
	explicit_bzero(auth, strlen(auth));
	if (r < 0) {
		fb_error("cannot reach GitHub's API: %s", error ? error : strerror(-r));
		return FB_EXIT_FAILED;
	}
	if (status != 201) {
		_cleanup_free_ char *why = api_error(status, answer);
		fb_error("GitHub refused runner '%s' (POST %s): %s", name, endpoint, why ? why : "?");
		return FB_EXIT_FAILED;
	}
	_cleanup_(fb_json_putp) json_object *res = json_tokener_parse(answer);
	explicit_bzero(answer, strlen(answer));
	json_object *runner = NULL;
	const char *jit = fb_json_str(res, "encoded_jit_config", NULL);
	if (res)
		json_object_object_get_ex(res, "runner", &runner);
	if (!jit || !*jit || strlen(jit) > JIT_MAX || strspn(jit, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != strlen(jit)) {
		fb_error("GitHub's answer for runner '%s' has no encoded_jit_config (base64, at most %u bytes)", name, JIT_MAX);
		return FB_EXIT_FAILED;
	}
	_cleanup_free_ char *env = fb_strdupf("ACTIONS_RUNNER_INPUT_JITCONFIG=%s\n", jit);
	if (!env)
		return FB_EXIT_FAILED;
	_cleanup_close_ int dir = fb_open_dir("/run/pmoves-ci-runner", true);
	if (dir < 0 || fchmod(dir, 0700) < 0 || (r = fb_write(JIT_ENV, env, strlen(env), 0600, 0, 0)) < 0) {
		explicit_bzero(env, strlen(env));
		fb_error("cannot write '%s': %s", JIT_ENV, strerror(dir < 0 ? -dir : r < 0 ? -r : errno));
		return FB_EXIT_FAILED;
	}
	explicit_bzero(env, strlen(env));
	printf("%s: ci-runner: runner '%s' (id %lld) registered just in time for one job\n", FB_NAME,
	       fb_json_str(runner, "name", name), (long long)fb_json_int(runner, "id", 0));
	return fflush(stdout) == 0 ? FB_EXIT_OK : FB_EXIT_FAILED;
}

int fb_ci_runner_jit_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h')
			return jit_usage(stdout, FB_EXIT_OK);
		if (c != 'r' || fb_root_set(optarg) < 0)
			return jit_usage(stderr, FB_EXIT_USAGE);
	}
	if (optind != argc)
		return jit_usage(stderr, FB_EXIT_USAGE);
	return jit_register();
}
