/* Subcommands of pmoves-image: one file each (cmd-<verb>.c), listed in main.c. */
#ifndef PMOVES_CMD_H
#define PMOVES_CMD_H

/* Exit codes, the same for every subcommand. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,    /* the work failed (a tool failed, a test did not match) */
	EXIT_USAGE = 2,   /* bad command line or invalid profile/config: nothing was done */
	EXIT_MISSING = 3, /* a required tool or file is missing */
	EXIT_INTERRUPTED = 130,
};

int cmd_build(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_schema(int argc, char **argv);
int cmd_flash(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
