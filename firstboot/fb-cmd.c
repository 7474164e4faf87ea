/* Commands: run, status, validate, schema. Exit status: 0 ok, 1 failed/degraded/pending, 2 invalid
 * config or bad usage, 3 missing file, 4 status --wait timed out. */
#include "fb-cmd.h"
#include "fb-config.h"
#include "fb-engine.h"
#include "fb-report.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <getopt.h>
#include <sys/stat.h>
#include <time.h>

/* How often status --wait reads status.json. */
#define WAIT_POLL_MS 200

static int usage_error(const char *cmd)
{
	fprintf(stderr, "%s: see '%s %s --help'\n", FB_NAME, FB_NAME, cmd);
	return FB_EXIT_USAGE;
}

static int set_root(const char *root)
{
	int r = fb_root_set(root);
	if (r < 0) {
		fb_error("cannot use '%s' as the root: %s", root, strerror(-r));
		return r == -ENOENT ? FB_EXIT_MISSING : FB_EXIT_USAGE;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct fb_run_opts o = { 0 };
	const char *root = "/";
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "+r:nvh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'n':
			o.dry_run = true;
			break;
		case 'v':
			fb_verbose++;
			break;
		case 'h':
			printf("usage: %s run [--root DIR] [--dry-run] [-v]\n\n"
			       "Provision this machine from its first-boot config, step by step, once.\n"
			       "  --root DIR   work on the tree DIR (every path, /proc and /sys too, is under it;\n"
			       "               commands that change the running system are not run)\n"
			       "  --dry-run    print the plan: each step and whether it would run; write nothing\n"
			       "  -v           say more (the commands run)\n",
			       FB_NAME);
			return FB_EXIT_OK;
		default:
			return usage_error("run");
		}
	}
	if (optind != argc)
		return usage_error("run");
	int r = set_root(root);
	if (r)
		return r;
	umask(022);
	return fb_engine_run(fb_steps, fb_steps_count, &o);
}

/* A field of status.json as the table shows it: one line, control characters escaped (the file
 * could hold anything, and an escape sequence could hide or fake a line). Caller frees. */
static char *shown(json_object *o, const char *key, const char *def)
{
	json_object *v;
	const char *s = json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : def;
	return s ? fb_redact(s) : NULL;
}

static void print_status(json_object *o)
{
	json_object *steps;
	_cleanup_free_ char *status = shown(o, "status", "?"), *config = shown(o, "config_error", NULL),
			    *started = shown(o, "started", NULL), *finished = shown(o, "finished", NULL);
	printf("status: %s\n", status ? status : "?");
	if (config)
		printf("config: %s\n", config);
	if (started)
		printf("started: %s\n", started);
	if (finished)
		printf("finished: %s\n", finished);
	if (!json_object_object_get_ex(o, "steps", &steps) || !json_object_is_type(steps, json_type_array))
		return;
	/* The name column is as wide as the longest name ("proxmox-kernel"), at most NAME_MAX_SHOWN
	 * (the file could hold anything). */
	enum { NAME_MAX_SHOWN = 64 };
	int width = (int)strlen("STEP");
	for (size_t i = 0; i < json_object_array_length(steps); i++) {
		_cleanup_free_ char *n = shown(json_object_array_get_idx(steps, i), "name", "");
		size_t len = strnlen(n ? n : "", NAME_MAX_SHOWN);
		if ((int)len > width)
			width = (int)len;
	}
	printf("\n%-*s %-8s %8s  %s\n", width, "STEP", "STATE", "MS", "MESSAGE");
	for (size_t i = 0; i < json_object_array_length(steps); i++) {
		json_object *s = json_object_array_get_idx(steps, i);
		_cleanup_free_ char *name = shown(s, "name", "?"), *state = shown(s, "state", "?"), *msg = shown(s, "message", ""),
				    *ms = shown(s, "duration_ms", "-");
		/* A cut escape ("\x1" of "\x1b") is harmless: only whole bytes were escaped. */
		printf("%-*.*s %-8s %8s  %s\n", width, NAME_MAX_SHOWN, name ? name : "?", state ? state : "?", ms ? ms : "-",
		       msg ? msg : "");
	}
}

/* status.json for --json: as the engine writes it (fb_status_json), re-serialized from what was
 * parsed, so a byte the engine would not write (a raw control in an edited or hostile file)
 * never reaches the terminal raw. */
static void print_status_json(json_object *o)
{
	_cleanup_free_ char *text = json_text_printable(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (text)
		printf("%s\n", text);
}

/* status.json parsed: 0; -ENOENT (no run has written it yet), -EBADMSG (not a
 * status file) or -errno, *ret_error set (a FIFO or a device in its place is refused, not
 * waited on). */
static int status_load(json_object **ret, char **ret_error)
{
	_cleanup_free_ char *text = NULL;
	int r = fb_read_file(FB_STATUS_PATH, FB_CONFIG_MAX, &text, NULL, ret_error);
	if (r < 0)
		return r;
	json_object *o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EBADMSG;
	}
	*ret = o;
	return 0;
}

/* The run status.json describes has ended: its status is not "running" and no step's is.
 * Pending steps do not count: they finish on a later run (the timer, a later boot). */
static bool run_ended(json_object *o)
{
	json_object *steps;
	if (fb_state_from_name(fb_json_str(o, "status", NULL)) == FB_STATE_RUNNING)
		return false;
	for (size_t i = 0; json_object_object_get_ex(o, "steps", &steps) && json_object_is_type(steps, json_type_array) &&
			   i < json_object_array_length(steps);
	     i++)
		if (fb_state_from_name(fb_json_str(json_object_array_get_idx(steps, i), "state", NULL)) == FB_STATE_RUNNING)
			return false;
	return true;
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "wait", no_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *root = "/";
	bool json = false, wait = false, has_timeout = false;
	uint64_t timeout = 0;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "+r:jwt:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'w':
			wait = true;
			break;
		case 't':
			/* A year at most: the deadline stays far inside a double's whole seconds. */
			if (parse_u64(optarg, &timeout) < 0 || timeout > 366u * 86400u) {
				fb_error("'%s' is not a timeout (whole seconds, at most a year)", optarg);
				return FB_EXIT_USAGE;
			}
			has_timeout = true;
			break;
		case 'h':
			printf("usage: %s status [--json] [--wait [--timeout S]] [--root DIR]\n\n"
			       "Show the state, times and message of every step (from %s).\n"
			       "  --json       print status.json, controls escaped\n"
			       "  --wait       wait first for a run to end: until the file exists and neither its status\n"
			       "               nor a step's is 'running' (pending steps do not hold it)\n"
			       "  --timeout S  wait at most S seconds; then exit %d\n"
			       "  --root DIR   read the status of the tree DIR\n"
			       "exit status: 0 ok, 1 failed, degraded, pending, reboot or running, 3 no run yet, %d timed out\n",
			       FB_NAME, FB_STATUS_PATH, FB_EXIT_TIMEOUT, FB_EXIT_TIMEOUT);
			return FB_EXIT_OK;
		default:
			return usage_error("status");
		}
	}
	if (optind != argc || (has_timeout && !wait))
		return usage_error("status");
	int r = set_root(root);
	if (r)
		return r;
	_cleanup_free_ char *err = NULL;
	_cleanup_(fb_json_putp) json_object *o = NULL;
	double deadline = now_seconds() + (double)timeout;
	bool timed_out = false;
	for (;;) {
		free(TAKE_PTR(err));
		r = status_load(&o, &err);
		/* Waiting: for the first run to write the file, then for the run to end. */
		if (!wait || (r < 0 && r != -ENOENT) || (r == 0 && run_ended(o)))
			break;
		if (has_timeout && now_seconds() >= deadline) {
			timed_out = true;
			break;
		}
		json_object_put(TAKE_PTR(o));
		struct timespec ts = { .tv_nsec = WAIT_POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (timed_out) {
		fb_error("timed out after %llu s waiting for the first-boot run to end%s", (unsigned long long)timeout,
			 r == -ENOENT ? " (no run has started yet)" : "");
		if (r == 0 && json)
			print_status_json(o);
		else if (r == 0)
			print_status(o);
		return FB_EXIT_TIMEOUT;
	}
	if (r == -EBADMSG) {
		fb_error("'%s' is not a status file", FB_STATUS_PATH);
		return FB_EXIT_FAILED;
	}
	if (r < 0) {
		fb_error("%s%s", err ? err : strerror(-r), r == -ENOENT ? " (first boot has not run yet)" : "");
		return r == -ENOENT ? FB_EXIT_MISSING : FB_EXIT_FAILED;
	}
	if (json)
		print_status_json(o);
	else
		print_status(o);
	return fb_state_from_name(fb_json_str(o, "status", NULL)) == FB_STATE_OK ? FB_EXIT_OK : FB_EXIT_FAILED;
}

static int cmd_validate(int argc, char **argv)
{
	bool help = argc > 1 && (STREQ(argv[1], "--help") || STREQ(argv[1], "-h"));
	bool part = argc > 1 && STREQ(argv[1], "--part"), merge = argc > 1 && STREQ(argv[1], "--merge");
	int first = part || merge ? 2 : 1;
	if (help || argc <= first) {
		printf("usage: %s validate [--part | --merge] FILE...\n\n"
		       "Check first-boot config files (firstboot.json, device.json) against the schema, each\n"
		       "as a whole config.\n"
		       "  --part   each FILE as one source of a machine's config, which others complete\n"
		       "           (types, formats, limits, unknown keys; not required keys or rules across\n"
		       "           keys): a device.json that completes an image's firstboot.json\n"
		       "  --merge  the FILEs merged in order, as a machine merges its sources (firstboot.json,\n"
		       "           then device.json), each checked as a source and the result as a whole\n",
		       FB_NAME);
		return help ? FB_EXIT_OK : FB_EXIT_USAGE;
	}
	int rc = FB_EXIT_OK;
	for (int i = first; i < argc; i++) {
		_cleanup_free_ char *err = NULL;
		int r = fb_config_validate_files((char *[]){ argv[i], NULL }, part || merge, false, &err);
		if (r == 0) {
			_cleanup_free_ char *name = fb_redact(argv[i]); /* controls in a file name escaped */
			if (!merge)
				printf("%s: valid%s\n", name ? name : argv[i], part ? " as a part" : "");
			continue;
		}
		fb_error("%s", err ? err : strerror(-r));
		if (r == -ENOENT)
			rc = FB_EXIT_MISSING;
		else if (rc == FB_EXIT_OK)
			rc = FB_EXIT_USAGE;
	}
	if (merge && rc == FB_EXIT_OK) {
		_cleanup_free_ char *err = NULL;
		int r = fb_config_validate_files(argv + first, true, true, &err);
		if (r < 0) {
			fb_error("%s", err ? err : strerror(-r));
			return FB_EXIT_USAGE;
		}
		printf("merged config of %d file%s: valid\n", argc - first, argc - first == 1 ? "" : "s");
	}
	return rc;
}

static int cmd_schema(int argc, char **argv)
{
	if (argc == 2 && (STREQ(argv[1], "--help") || STREQ(argv[1], "-h"))) {
		printf("usage: %s schema\n\n"
		       "Print the JSON Schema (draft 2020-12) of a first-boot config file: its keys, their\n"
		       "types, and the formats and enumerations 'validate' checks, made from the same tables.\n"
		       "Secret values are marked \"writeOnly\". What a JSON Schema cannot express (URLs, CIDR\n"
		       "arithmetic, base64, rules across fields or elements) is checked by 'validate' alone.\n"
		       "make install puts it in the data directory as schema/firstboot.schema.json.\n",
		       FB_NAME);
		return FB_EXIT_OK;
	}
	if (argc != 1)
		return usage_error("schema");
	json_object *s = fb_config_json_schema();
	if (!s) {
		fb_error("out of memory");
		return FB_EXIT_FAILED;
	}
	printf("%s\n", json_object_to_json_string_ext(s, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(s);
	return fflush(stdout) == 0 ? FB_EXIT_OK : FB_EXIT_FAILED;
}

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "run", cmd_run, "provision the machine (or a tree with --root), or --dry-run for the plan" },
	{ "status", cmd_status, "show every step's state, time and message; --wait for the run to end" },
	{ "validate", cmd_validate, "check config files" },
	{ "schema", cmd_schema, "print the config's JSON Schema" },
	{ "netboot", fb_netboot_main, "make the live root of a network-booted machine (its initramfs runs it)" },
	{ "ci-runner-jit", fb_ci_runner_jit_main, "register one ephemeral GitHub Actions runner (its service runs it)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: %s <command> [options]\n\ncommands:\n", FB_NAME);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'%s <command> --help' describes a command.\n"
		   "exit status: 0 ok, 1 failed or degraded, 2 invalid config or bad usage, 3 missing file,\n"
		   "4 timed out (status --wait --timeout)\n",
		FB_NAME);
}

int fb_main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return FB_EXIT_USAGE;
	}
	if (STREQ(argv[1], "--help") || STREQ(argv[1], "-h") || STREQ(argv[1], "help")) {
		usage(stdout);
		return FB_EXIT_OK;
	}
	if (STREQ(argv[1], "--version")) {
		printf("%s %s\n", FB_NAME, PMOVES_VERSION);
		return FB_EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (STREQ(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	_cleanup_free_ char *shown = str_printable(argv[1], strlen(argv[1]), NULL);
	fprintf(stderr, "%s: '%s' is not a command, see '%s --help'\n", FB_NAME, shown ? shown : "?", FB_NAME);
	return FB_EXIT_USAGE;
}
