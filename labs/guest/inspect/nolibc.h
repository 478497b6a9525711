/*
 * nolibc.h: the few Linux system calls stage 8's guest programs need, without a C library.
 *
 * Why: a static glibc program is about 700 KB, and the guest kernel unpacks every byte of
 * the initramfs at boot, which is slow under this course's nested KVM (see
 * shared/docs/host-kvm.md: 2.7 MB take about 30 s). These programs are a few KB each.
 * Build with: gcc -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin ...
 *
 * x86-64 system call convention (the same as the kernel's entry_SYSCALL_64): number in
 * rax, arguments in rdi, rsi, rdx, r10, r8, r9; the `syscall` instruction clobbers rcx and
 * r11; the result comes back in rax, -errno on failure.
 *
 * Numbers and flags come from the kernel's UAPI headers (linux-libc-dev), not from a libc.
 */
#ifndef MINIVIRT_NOLIBC_H
#define MINIVIRT_NOLIBC_H

#include <asm/unistd.h>
#include <linux/fcntl.h>
#include <linux/mman.h>
#include <linux/time_types.h>
#include <stddef.h>
#include <stdint.h>

#define CLOCK_MONOTONIC 1 /* include/uapi/linux/time.h; that header clashes with time_types.h */

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline long sys_write(int fd, const void *buf, size_t len) { return sys6(__NR_write, fd, (long)buf, (long)len, 0, 0, 0); }
static inline long sys_open(const char *path, int flags) { return sys6(__NR_openat, AT_FDCWD, (long)path, flags, 0, 0, 0); }
static inline long sys_pread(int fd, void *buf, size_t len, long off) { return sys6(__NR_pread64, fd, (long)buf, (long)len, off, 0, 0); }
static inline long sys_pwrite(int fd, const void *buf, size_t len, long off) { return sys6(__NR_pwrite64, fd, (long)buf, (long)len, off, 0, 0); }
static inline long sys_getpid(void) { return sys6(__NR_getpid, 0, 0, 0, 0, 0, 0); }
static inline long sys_mlock(const void *addr, size_t len) { return sys6(__NR_mlock, (long)addr, (long)len, 0, 0, 0, 0); }
static inline long sys_clock_gettime(int clock, struct __kernel_timespec *ts) { return sys6(__NR_clock_gettime, clock, (long)ts, 0, 0, 0, 0); }
static inline void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
    return (void *)sys6(__NR_mmap, (long)addr, (long)len, prot, flags, fd, off);
}
static inline __attribute__((noreturn)) void sys_exit(int status)
{
    for (;;)
        sys6(__NR_exit_group, status, 0, 0, 0, 0, 0);
}

/* A failed call returns -errno: a value in [-4095, -1]. */
static inline int failed(long ret) { return ret < 0 && ret >= -4095; }

/* --- output: strings and numbers into a line buffer ------------------------------------- */
struct line {
    char text[256];
    size_t len;
};

static inline void put_str(struct line *l, const char *s)
{
    while (*s && l->len < sizeof l->text)
        l->text[l->len++] = *s++;
}

static inline void put_hex(struct line *l, uint64_t v)
{
    char digits[16];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    put_str(l, "0x");
    while (n > 0 && l->len < sizeof l->text)
        l->text[l->len++] = digits[--n];
}

static inline void put_dec(struct line *l, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0 && l->len < sizeof l->text)
        l->text[l->len++] = digits[--n];
}

/* Writes the line with a newline to fd (1: stdout, 2: stderr). */
static inline void put_line(struct line *l, int fd)
{
    put_str(l, "\n");
    sys_write(fd, l->text, l->len);
    l->len = 0;
}

/* A decimal number from a string, or -1 if it is not one. */
static inline long parse_dec(const char *s)
{
    long v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* --- the entry point ------------------------------------------------------------------- */
/* The kernel starts a static program at _start with argc, argv[], NULL, envp[] on the stack. */
int main(int argc, char **argv);

__attribute__((used)) static void start_c(long *sp)
{
    sys_exit(main((int)sp[0], (char **)(sp + 1)));
}

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    xor %rbp, %rbp\n"  /* the outermost frame, for debuggers */
        "    mov %rsp, %rdi\n"  /* start_c(sp) */
        "    and $-16, %rsp\n"  /* the ABI wants a 16-byte aligned stack at a call */
        "    call start_c\n"
        "    hlt\n");

#endif
