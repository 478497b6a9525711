/*
 * gva-demo: one page with a value the VMM can find, for stage 8's `translate`.
 *
 *   gva-demo            run until killed (Ctrl-C, `kill PID`)
 *   gva-demo SECONDS    run that many seconds, then exit 0
 *
 * It maps one page, writes the 8 bytes "minivirt" at its start, and prints one line:
 *
 *   gva-demo: gva=0x7f5c2d1f6000 gpa=0x2b61000 value=0x74726976696e696d pid=61
 *
 * gva is the page's virtual address in this process; gpa the guest-physical address the
 * guest kernel gave it, read from this process's own page map (/proc/self/pagemap: one
 * 64-bit entry per virtual page, bit 63 "present", bits 0-54 the frame number, which only
 * root sees); value the 8 bytes as the little-endian number the VMM reads at that GPA.
 *
 * Then it stays busy: a loop that keeps writing the next 8 bytes of the page, so that this
 * process is the one running on the vCPU, and its page tables (CR3) the live ones, whenever
 * the VMM looks. In the monitor, `translate GVA` must then end at the same GPA and value.
 *
 * Exit status: 0 after SECONDS, 1 if the page or its frame cannot be had (not root?), 2 for
 * bad usage. Built without a C library; see nolibc.h.
 */
#include "nolibc.h"

#define PAGE_SIZE 4096
/* /proc/self/pagemap entry: bit 63 present, bits 0-54 the page frame number. */
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_PFN_MASK ((1ull << 55) - 1)
/* The bytes "minivirt" as x86 reads them: a little-endian 64-bit number. */
#define DEMO_VALUE 0x74726976696e696dull
/* A system call is slow under nested KVM: look at the clock once per 2^22 rounds. */
#define ROUNDS_PER_CLOCK_CHECK (1u << 22)

static int fail(const char *what, long err)
{
    struct line l;
    l.len = 0;
    put_str(&l, "gva-demo: ");
    put_str(&l, what);
    if (err) {
        put_str(&l, " (errno ");
        put_dec(&l, (uint64_t)-err);
        put_str(&l, ")");
    }
    put_line(&l, 2);
    return 1;
}

#define NANOSECONDS_PER_SECOND 1000000000ull

static uint64_t now_ns(void)
{
    struct __kernel_timespec ts;
    if (failed(sys_clock_gettime(CLOCK_MONOTONIC, &ts)))
        return 0;
    return (uint64_t)ts.tv_sec * NANOSECONDS_PER_SECOND + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long seconds = -1; /* forever */
    if (argc > 2 || (argc == 2 && (seconds = parse_dec(argv[1])) < 0)) {
        struct line l;
        l.len = 0;
        put_str(&l, "usage: gva-demo [SECONDS]");
        put_line(&l, 2);
        return 2;
    }

    /* A private page of our own; locked, so that it stays at its frame while we run. */
    volatile uint64_t *page = sys_mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (failed((long)page))
        return fail("error: mmap of one page failed", (long)page);
    page[0] = DEMO_VALUE; /* the first write gives the page its frame */
    long err = sys_mlock((const void *)page, PAGE_SIZE);
    if (failed(err))
        return fail("error: mlock failed", err);

    /* Its frame, from our own page map: entry number gva / 4096. */
    long fd = sys_open("/proc/self/pagemap", O_RDONLY);
    if (failed(fd))
        return fail("error: cannot open /proc/self/pagemap", fd);
    uint64_t entry = 0;
    uint64_t gva = (uint64_t)(uintptr_t)page;
    err = sys_pread((int)fd, &entry, sizeof entry, (long)(gva / PAGE_SIZE * sizeof entry));
    if (err != (long)sizeof entry)
        return fail("error: cannot read /proc/self/pagemap", failed(err) ? err : 0);
    uint64_t pfn = entry & PAGEMAP_PFN_MASK;
    if (!(entry & PAGEMAP_PRESENT) || pfn == 0)
        return fail("error: /proc/self/pagemap shows no frame (only root sees frame numbers)", 0);

    struct line l;
    l.len = 0;
    put_str(&l, "gva-demo: gva=");
    put_hex(&l, gva);
    put_str(&l, " gpa=");
    put_hex(&l, pfn * PAGE_SIZE + gva % PAGE_SIZE);
    put_str(&l, " value=");
    put_hex(&l, page[0]);
    put_str(&l, " pid=");
    put_dec(&l, (uint64_t)sys_getpid());
    put_line(&l, 1);

    /* Busy: keep writing the page (its second 8 bytes count the rounds), value untouched. */
    uint64_t deadline = seconds >= 0 ? now_ns() + (uint64_t)seconds * NANOSECONDS_PER_SECOND : 0;
    for (uint32_t round = 1;; round++) {
        page[1]++;
        if (seconds >= 0 && round % ROUNDS_PER_CLOCK_CHECK == 0 && now_ns() >= deadline)
            return 0;
    }
}
