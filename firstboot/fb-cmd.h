/* The commands of pmoves-firstboot; main() only calls fb_main(). Tests call it too. */
#ifndef PMOVES_FB_CMD_H
#define PMOVES_FB_CMD_H

int fb_main(int argc, char **argv);
/* netboot (fb-netboot.c) */
int fb_netboot_main(int argc, char **argv);
/* ci-runner-jit (step-ci-runner.c) */
int fb_ci_runner_jit_main(int argc, char **argv);

#endif
