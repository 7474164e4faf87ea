/* pmoves-firstboot: provision a machine on its first boot from its config. */
#include "fb-cmd.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	int r = fb_main(argc, argv);
	fflush(stdout);
	return r;
}
