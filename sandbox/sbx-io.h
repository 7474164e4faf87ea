/* The I/O disk between pmoves-sandbox and the init of its guest: a raw virtio block device,
 * the guest's second disk (/dev/vdb), no filesystem, so neither side mounts what the other
 * wrote. Both sides are little-endian machines (x86_64, aarch64); the fields are written
 * byte by byte anyway.
 *
 *   0           request: head (magic "PMSBXRQ1", le32 body length, le32 zero), then the body:
 *               NUL-terminated "key=value" strings:
 *                 arg=WORD     the command's argv, in order (at least one)
 *                 addr=A.B.C.D/N, gw=A.B.C.D, dns=A.B.C.D   the guest's eth0, when networked
 *                 halt=poweroff|reboot                       how the guest ends the VM
 *   SBX_RES_OFF result: head (magic "PMSBXRS1", le32 kind, le32 value, le32 output length,
 *               le32 output bytes dropped beyond the disk, 12 zero bytes), then the output
 *               (stdout and stderr together, as they came).
 *
 * The guest writes the result's head last, after the output and before it syncs: a result
 * without its magic is a guest that never finished. */
#ifndef PMOVES_SBX_IO_H
#define PMOVES_SBX_IO_H

#include <stdint.h>

#define SBX_REQ_MAGIC "PMSBXRQ1"
#define SBX_RES_MAGIC "PMSBXRS1"
#define SBX_HEAD_SIZE 16u
#define SBX_REQ_MAX 65536u /* head and body */
#define SBX_RES_OFF 65536u
#define SBX_RES_HEAD 32u

enum sbx_kind {
	SBX_EXITED = 1,   /* value: the exit status */
	SBX_SIGNALED = 2, /* value: the signal */
	SBX_NOEXEC = 3,   /* value: errno of execvp; the output says what */
	SBX_NOINIT = 4,   /* the guest could not set itself up; the output says why */
};

static inline void sbx_le32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t sbx_le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
