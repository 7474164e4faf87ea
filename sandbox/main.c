/* pmoves-sandbox: run a task in a fresh microVM and throw the VM away (docs/sandbox.md). */
#include <getopt.h>
#include <stdio.h>

#include "log.h"
#include "sbx.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/pmoves/sandbox.json"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pmoves-sandbox [--config FILE] COMMAND ...\n"
		"\n"
		"Run one task in a fresh microVM: its root a throw-away copy on a tmpfs, its output\n"
		"returned, the VM and everything it wrote gone when it ends, a line in the audit log\n"
		"when it is created and when it is destroyed.\n"
		"\n"
		"Commands:\n"
		"  run [--json] SPEC  run the task SPEC describes (JSON: command, vcpus, memory_mib,\n"
		"                     ttl_s, network); its output goes to stdout, and the exit code\n"
		"                     is the command's (124: time to live ran out, 125: the sandbox\n"
		"                     failed, 126/127: the command could not run, 128+N: signal N)\n"
		"  net-up             make the sandboxes' bridge and firewall (as root)\n"
		"  net-down           remove them\n"
		"  backends           the backends and whether each can run here\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE  the machine's sandbox config (default " DEFAULT_CONFIG ",\n"
		"                     built-in defaults when it does not exist)\n"
		"  -v, --verbose      say more\n"
		"  -h, --help         this text\n"
		"      --version      the version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },      { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },      {},
	};
	log_program = "pmoves-sandbox";
	const char *config = NULL;
	bool json = false;
	int c;
	/* Options may come before or after the command (getopt moves the others to the end). */
	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1)
		switch (c) {
		case 'c': config = optarg; break;
		case 'j': json = true; break;
		case 'v': log_verbose++; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("pmoves-sandbox %s\n", PMOVES_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind];
	int nargs = argc - optind - 1;
	char **args = argv + optind + 1;

	if (!config && access(DEFAULT_CONFIG, F_OK) == 0)
		config = DEFAULT_CONFIG;
	struct sbx_config cfg;
	int r = sbx_config_load(config, &cfg);
	if (r < 0) {
		sbx_config_free(&cfg);
		return STREQ(cmd, "run") ? SBX_EXIT_FAILED : 1;
	}
	if (STREQ(cmd, "run") && nargs == 1) {
		struct sbx_spec spec;
		r = sbx_spec_load(args[0], &spec);
		r = r < 0 ? SBX_EXIT_FAILED : sbx_run(&cfg, &spec, json);
		sbx_spec_free(&spec);
	} else if (STREQ(cmd, "net-up") && nargs == 0) {
		r = sbx_net_up(&cfg) < 0 ? 1 : 0;
	} else if (STREQ(cmd, "net-down") && nargs == 0) {
		r = sbx_net_down(&cfg) < 0 ? 1 : 0;
	} else if (STREQ(cmd, "backends") && nargs == 0) {
		const struct sbx_backend *b;
		r = 1;
		for (size_t i = 0; (b = sbx_backend_at(i)); i++) {
			const char *why = b->unusable(&cfg);
			printf("%-12s %s\n", b->name, why ? why : "usable");
			r &= why ? 1 : 0;
		}
	} else {
		log_error("'%s' with %d argument%s: see pmoves-sandbox --help", cmd, nargs, nargs == 1 ? "" : "s");
		r = 2;
	}
	sbx_config_free(&cfg);
	fflush(stdout);
	return r;
}
