#include "cmd.h"
#include <stdio.h>
/* placeholder */
int cmd_run(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "not yet\n"); return 1; }
