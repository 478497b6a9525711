/*
 * boot-done: tell the VMM that the guest has finished booting.
 *
 * Writes the byte 123 to I/O port 0x3f0: Firecracker's boot-complete signal on x86, which
 * minivirt's stage 8 boot timer (stages/08-inspect/src/boot_timer.rs) turns into the
 * "boot complete" time of its boot timeline. /init runs it just before its
 * MINIVIRT-GUEST-READY line. On a VMM without the boot timer the write reaches no device
 * and is dropped, as on real hardware with nothing at that port.
 *
 * The port is reached through /dev/port, where writing at offset N is an `outb` to port N
 * done by the kernel (drivers/char/mem.c, write_port). The textbook way from user space,
 * ioperm(0x3f0, 1, 1) and then the `outb` instruction, needs CONFIG_X86_IOPL_IOPERM, which
 * the lab kernel (tinyconfig) does not have. Needs root (CAP_SYS_RAWIO).
 *
 * Exit status 0, or 1 with a message if /dev/port cannot be written. Built without a C
 * library; see nolibc.h.
 */
#include "nolibc.h"

#define BOOT_TIMER_PORT 0x3f0
#define BOOT_COMPLETE_MAGIC 123

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const unsigned char magic = BOOT_COMPLETE_MAGIC;
    long fd = sys_open("/dev/port", O_WRONLY);
    long written = failed(fd) ? fd : sys_pwrite((int)fd, &magic, 1, BOOT_TIMER_PORT);
    if (written == 1)
        return 0;
    struct line l;
    l.len = 0;
    put_str(&l, "boot-done: cannot write port 0x3f0 through /dev/port (errno ");
    put_dec(&l, failed(written) ? (uint64_t)-written : 0);
    put_str(&l, ")");
    put_line(&l, 2);
    return 1;
}
