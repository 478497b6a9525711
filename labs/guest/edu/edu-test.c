/*
 * edu-test: drive the edu PCI device (QEMU's `edu`, minivirt stage 7) from Linux user space.
 *
 *   edu-test              run every check, one line each; exit 0 only if all pass
 *   edu-test --no-extra   the same without the minivirt extra operation (for QEMU's edu)
 *   edu-test --list       list the PCI functions from /sys, like `lspci -n`
 *
 * A user-space driver in four steps, each what a kernel driver does with a kernel API:
 *   1. find the card: /sys/bus/pci/devices/<bdf>/{vendor,device}        (pci_match_id)
 *   2. bind uio_pci_generic, which enables the card and forwards its INTx interrupt to
 *      /dev/uioN                                              (pci_enable_device, request_irq)
 *   3. map BAR 0: mmap /sys/bus/pci/devices/<bdf>/resource0                 (pci_iomap)
 *   4. DMA: a locked page of our own memory, its guest-physical address from
 *      /proc/self/pagemap, bus mastering on through the config file
 *                                           (dma_alloc_coherent, pci_set_master)
 *
 * Register map (QEMU docs/specs/edu.rst; minivirt stages/07-edu/src/devices/edu.rs):
 *   0x00 identification  0x04 liveness  0x08 factorial  0x20 status  0x24 interrupt status
 *   0x40/0x44 CRC-32 count/result (minivirt extra)  0x60 raise  0x64 ack
 *   0x80 DMA source  0x88 DMA destination  0x90 DMA count  0x98 DMA command
 *
 * Must run as root (sysfs writes, PFNs in pagemap). Built with musl-gcc -static by build.sh.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* --- the device ------------------------------------------------------------------------ */
#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_REVISION 0x10
#define EDU_CLASS 0x00ff00 /* PCI_CLASS_OTHERS */
#define EDU_BAR_SIZE (1u << 20)

#define REG_ID 0x00
#define REG_LIVENESS 0x04
#define REG_FACTORIAL 0x08
#define REG_STATUS 0x20
#define REG_IRQ_STATUS 0x24
#define REG_CRC_COUNT 0x40  /* minivirt extra */
#define REG_CRC_RESULT 0x44 /* minivirt extra */
#define REG_IRQ_RAISE 0x60
#define REG_IRQ_ACK 0x64
#define REG_DMA_SRC 0x80
#define REG_DMA_DST 0x88
#define REG_DMA_COUNT 0x90
#define REG_DMA_CMD 0x98

#define EDU_ID 0x010000edu
#define STATUS_COMPUTING 0x01
#define STATUS_IRQFACT 0x80
#define IRQ_FACTORIAL 0x001
#define IRQ_DMA 0x100
#define DMA_RUN 0x1
#define DMA_TO_RAM 0x2 /* direction: 0 = RAM -> card buffer, 1 = card buffer -> RAM */
#define DMA_IRQ 0x4
#define DMA_BUFFER 0x40000 /* the card's 4 KiB buffer, in the card's DMA address space */
#define DMA_BUFFER_SIZE 4096
#define DMA_MASK ((1ull << 28) - 1) /* the card drives 28 address lines */
/*
 * The most we transfer: the buffer less its last byte. QEMU 7.2 (Debian 12's) and older
 * check a transfer's end address as if it had to lie *inside* the buffer, and abort the
 * whole VM ("hw_error") on a transfer that ends exactly at its end; upstream fixed that
 * ("hw: misc: edu: fix 2 off-by-one errors") and minivirt follows the fix. Staying one
 * byte short works on both.
 */
#define DMA_LEN (DMA_BUFFER_SIZE - 1)

#define PAGE_SIZE 4096

/* PCI configuration space (include/uapi/linux/pci_regs.h) */
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS 0x06
#define PCI_STATUS_INTERRUPT 0x0008

#define TIMEOUT_MS 5000 /* generous: TCG and nested KVM are slow */

/* --- results ---------------------------------------------------------------------------- */
static int checks_passed, checks_failed;

/* One line per check: "edu: ok   <what> <detail>" or "edu: FAIL <what>: <detail>".
 * Returns `ok`, so that a caller can stop at a failed step. */
__attribute__((format(printf, 3, 4))) static bool report(bool ok, const char *what, const char *fmt, ...)
{
    char why[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
    }
    if (ok) {
        checks_passed++;
        printf("edu: ok   %s%s%s\n", what, why[0] ? " " : "", why);
    } else {
        checks_failed++;
        printf("edu: FAIL %s: %s\n", what, why[0] ? why : "failed");
    }
    fflush(stdout);
    return ok;
}

static int summary(void)
{
    if (checks_failed == 0)
        printf("edu: %d checks passed\n", checks_passed);
    else
        printf("edu: %d of %d checks failed\n", checks_failed, checks_passed + checks_failed);
    return checks_failed == 0 ? 0 : 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- small sysfs helpers ------------------------------------------------------------------ */
static bool read_text(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return false;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return true;
}

/* A sysfs number such as "0x1234" or "11"; -1 when missing. */
static long read_number(const char *dir, const char *name)
{
    char path[640], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!read_text(path, buf, sizeof buf))
        return -1;
    return strtol(buf, NULL, 0);
}

static bool write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return false;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text);
}

/* The name of the driver bound to a device ("" if none): the last part of its driver link. */
static void driver_name(const char *dir, char *buf, size_t size)
{
    char path[640], target[512];
    snprintf(path, sizeof path, "%s/driver", dir);
    ssize_t n = readlink(path, target, sizeof target - 1);
    buf[0] = '\0';
    if (n > 0) {
        target[n] = '\0';
        const char *slash = strrchr(target, '/');
        snprintf(buf, size, "%s", slash ? slash + 1 : target);
    }
}

static int pci_entries(struct dirent ***list)
{
    return scandir("/sys/bus/pci/devices", list, NULL, alphasort);
}

/* --- --list: an lspci-like listing ---------------------------------------------------------- */
static int list_devices(void)
{
    struct dirent **list;
    int n = pci_entries(&list);
    if (n < 0) {
        perror("edu: /sys/bus/pci/devices");
        return 2;
    }
    printf("%-13s %-6s %-9s %-3s %-3s %s\n", "slot", "class", "id", "rev", "irq", "driver");
    for (int i = 0; i < n; i++) {
        if (list[i]->d_name[0] != '.') {
            char dir[300], driver[512];
            snprintf(dir, sizeof dir, "/sys/bus/pci/devices/%s", list[i]->d_name);
            driver_name(dir, driver, sizeof driver);
            printf("%-13s %06lx %04lx:%04lx %02lx  %-3ld %s\n", list[i]->d_name,
                   read_number(dir, "class"), read_number(dir, "vendor"), read_number(dir, "device"),
                   read_number(dir, "revision"), read_number(dir, "irq"), driver[0] ? driver : "-");
        }
        free(list[i]);
    }
    free(list);
    return 0;
}

/* --- the card --------------------------------------------------------------------------------- */
struct edu {
    char dir[300];           /* /sys/bus/pci/devices/<bdf> */
    char bdf[256];
    int config_fd;           /* the configuration space, through sysfs */
    int uio_fd;              /* /dev/uioN: one event per interrupt */
    volatile uint8_t *bar0;  /* the registers */
    uint8_t *dma_page;       /* one locked page of our memory that the card DMAs to and from */
    uint64_t dma_phys;       /* its guest-physical address */
};

/*
 * MMIO: `volatile` makes every access a real load or store of exactly this width, in
 * program order; below 0x80 the card only answers 4-byte accesses, from 0x80 on 4 or 8.
 */
static uint32_t rd32(struct edu *e, unsigned reg) { return *(volatile uint32_t *)(e->bar0 + reg); }
static void wr32(struct edu *e, unsigned reg, uint32_t v) { *(volatile uint32_t *)(e->bar0 + reg) = v; }
static uint64_t rd64(struct edu *e, unsigned reg) { return *(volatile uint64_t *)(e->bar0 + reg); }
static void wr64(struct edu *e, unsigned reg, uint64_t v) { *(volatile uint64_t *)(e->bar0 + reg) = v; }

/* Step 1: the first function whose vendor and device ids are edu's. */
static bool find_device(struct edu *e)
{
    struct dirent **list;
    int n = pci_entries(&list);
    bool found = false;
    for (int i = 0; i < n; i++) {
        char dir[300];
        snprintf(dir, sizeof dir, "/sys/bus/pci/devices/%s", list[i]->d_name);
        if (!found && list[i]->d_name[0] != '.' && read_number(dir, "vendor") == EDU_VENDOR &&
            read_number(dir, "device") == EDU_DEVICE) {
            snprintf(e->dir, sizeof e->dir, "%s", dir);
            snprintf(e->bdf, sizeof e->bdf, "%s", list[i]->d_name);
            found = true;
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    if (!found)
        return report(false, "find 1234:11e8", "no such device in /sys/bus/pci/devices");
    long class = read_number(e->dir, "class"), revision = read_number(e->dir, "revision");
    return report(class == EDU_CLASS && revision == EDU_REVISION, "find 1234:11e8",
                  "at %s, class %06lx (want %06x), revision %02lx (want %02x)", e->bdf, class,
                  EDU_CLASS, revision, EDU_REVISION);
}

/* Configuration space through /sys/.../config: the kernel turns pread/pwrite into
 * configuration cycles of the same size. */
static uint16_t config_read16(struct edu *e, off_t offset)
{
    uint16_t v = 0xffff;
    if (pread(e->config_fd, &v, 2, offset) != 2)
        return 0xffff;
    return v;
}

static bool config_write16(struct edu *e, off_t offset, uint16_t v)
{
    return pwrite(e->config_fd, &v, 2, offset) == 2;
}

/*
 * Unmask INTx: clear Interrupt Disable (command bit 10). uio_pci_generic's interrupt handler
 * sets that bit on every interrupt (pci_check_and_mask_intx), so that a level-triggered line
 * that user space has not yet serviced cannot storm; user space clears it when done. Only the
 * command register's high byte is written, as in the kernel's uio-howto: the low byte holds
 * bits (memory, bus master) that we must not race with.
 */
static bool unmask_intx(struct edu *e)
{
    uint8_t high;
    if (pread(e->config_fd, &high, 1, PCI_COMMAND + 1) != 1)
        return false;
    high &= (uint8_t)~(PCI_COMMAND_INTX_DISABLE >> 8);
    return pwrite(e->config_fd, &high, 1, PCI_COMMAND + 1) == 1;
}

/*
 * Step 2: bind uio_pci_generic. Writing the ids to new_id adds them to the driver's table
 * and probes matching devices; the driver enables the card (memory space on) and requests
 * its interrupt. Its /dev/uioN then counts interrupts.
 */
static bool bind_uio(struct edu *e)
{
    char driver[512], path[640];
    driver_name(e->dir, driver, sizeof driver);
    if (strcmp(driver, "uio_pci_generic") != 0) {
        if (driver[0]) {
            snprintf(path, sizeof path, "%s/driver/unbind", e->dir);
            write_text(path, e->bdf);
        }
        /* EEXIST: the ids are already in the table (an earlier run); then bind by name. */
        if (!write_text("/sys/bus/pci/drivers/uio_pci_generic/new_id", "1234 11e8") && errno == EEXIST)
            write_text("/sys/bus/pci/drivers/uio_pci_generic/bind", e->bdf);
        driver_name(e->dir, driver, sizeof driver);
        if (strcmp(driver, "uio_pci_generic") != 0)
            return report(false, "bind uio_pci_generic", "driver is '%s' (kernel log: dmesg)", driver);
    }
    /* The uio device's name: the one entry in <dir>/uio/. */
    char uio[300] = "";
    snprintf(path, sizeof path, "%s/uio", e->dir);
    DIR *d = opendir(path);
    for (struct dirent *de; d && (de = readdir(d));)
        if (strncmp(de->d_name, "uio", 3) == 0)
            snprintf(uio, sizeof uio, "/dev/%s", de->d_name);
    if (d)
        closedir(d);
    /* Keep it open to the end: closing it makes uio_pci_generic turn bus mastering off. */
    e->uio_fd = uio[0] ? open(uio, O_RDONLY) : -1;
    if (e->uio_fd < 0)
        return report(false, "bind uio_pci_generic", "no /dev/uioN for %s: %s", e->bdf, strerror(errno));
    /* irq 0: the kernel found no routing for INTA# (MP table, PIRQ table or the interrupt
     * line register); the card works, but its interrupts cannot reach us. */
    long irq = read_number(e->dir, "irq");
    return report(true, "bind uio_pci_generic", "%s, irq %ld%s", uio, irq,
                  irq > 0 ? "" : " (none assigned: the interrupt checks will fail)");
}

/* Step 3 (and the config file): map BAR 0, turn on memory decoding and bus mastering. */
static bool map_bar0(struct edu *e)
{
    char path[640];
    snprintf(path, sizeof path, "%s/config", e->dir);
    e->config_fd = open(path, O_RDWR);
    if (e->config_fd < 0)
        return report(false, "map BAR 0", "%s: %s", path, strerror(errno));
    /* Bus mastering lets the card start its own memory transactions: DMA. */
    uint16_t command = config_read16(e, PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    if (!config_write16(e, PCI_COMMAND, command) ||
        (config_read16(e, PCI_COMMAND) & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) !=
            (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER))
        return report(false, "map BAR 0", "cannot set memory space and bus master in the command register");

    snprintf(path, sizeof path, "%s/resource0", e->dir);
    int fd = open(path, O_RDWR | O_SYNC);
    if (fd < 0)
        return report(false, "map BAR 0", "%s: %s", path, strerror(errno));
    void *p = mmap(NULL, EDU_BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return report(false, "map BAR 0", "mmap %s: %s", path, strerror(errno));
    e->bar0 = p;
    char resource[128] = "";
    snprintf(path, sizeof path, "%s/resource", e->dir);
    read_text(path, resource, sizeof resource);
    return report(true, "map BAR 0", "%.18s, 1 MiB", resource);
}

/*
 * Step 4: a page for DMA. The card needs a guest-physical address below 2^28. We lock an
 * anonymous page in memory (so it is present and stays where it is: this kernel has no
 * swap, no page migration, no compaction) and look its frame number up in
 * /proc/self/pagemap: one 64-bit entry per virtual page, bit 63 "present", bits 0-54 the
 * PFN (zero unless we have CAP_SYS_ADMIN). A page above the mask is kept (so the next try
 * gets another page) and skipped.
 */
static bool alloc_dma_page(struct edu *e)
{
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        return report(false, "dma page", "/proc/self/pagemap: %s", strerror(errno));
    bool ok = false;
    for (int attempt = 0; attempt < 64 && !ok; attempt++) {
        uint8_t *page = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED || mlock(page, PAGE_SIZE) != 0)
            break;
        memset(page, 0, PAGE_SIZE); /* a private page of its own, not the shared zero page */
        uint64_t entry = 0;
        if (pread(fd, &entry, 8, (off_t)((uintptr_t)page / PAGE_SIZE * 8)) != 8)
            break;
        uint64_t pfn = entry & ((1ull << 55) - 1);
        if (!(entry >> 63) || pfn == 0) {
            close(fd);
            return report(false, "dma page", "pagemap shows no PFN (not root?)");
        }
        uint64_t phys = pfn * 4096;
        if (phys + 4096 - 1 <= DMA_MASK) {
            e->dma_page = page;
            e->dma_phys = phys;
            ok = true;
        }
    }
    close(fd);
    if (!ok)
        return report(false, "dma page", "no locked page below the 28-bit DMA mask");
    return report(true, "dma page", "at guest-physical 0x%" PRIx64, e->dma_phys);
}

/* --- waiting ------------------------------------------------------------------------------------ */

/* How long to wait for an interrupt: after one went missing, much less (the line is then
 * probably not wired at all, and 15 checks times 5 s is a long wait for the same news). */
static int irq_timeout_ms = TIMEOUT_MS;

/*
 * Wait for the card's interrupt through /dev/uioN: it becomes readable when the interrupt
 * count changes; read() returns the count. poll() with a timeout turns a missing interrupt
 * into a failure instead of a hang. After servicing the card the caller unmasks INTx.
 */
static bool wait_interrupt(struct edu *e, int timeout_ms)
{
    struct pollfd p = {.fd = e->uio_fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return false;
    uint32_t count;
    return read(e->uio_fd, &count, sizeof count) == sizeof count;
}

static bool wait_card_interrupt(struct edu *e)
{
    if (wait_interrupt(e, irq_timeout_ms))
        return true;
    irq_timeout_ms = 500;
    return false;
}

/*
 * A missing interrupt, with what tells where it got lost: the card's interrupt status (did
 * the card raise it?), the PCI status register's Interrupt Status bit (uio_pci_generic's
 * handler ignores the interrupt unless that bit is set: the line may be shared) and the
 * command register's Interrupt Disable bit (set, the card must not assert INTx#).
 * Then acknowledge everything and unmask, to go on from a clean state.
 */
static void report_missed_interrupt(struct edu *e, const char *what)
{
    uint32_t irq = rd32(e, REG_IRQ_STATUS);
    uint16_t status = config_read16(e, PCI_STATUS), command = config_read16(e, PCI_COMMAND);
    report(false, what, "no interrupt (irq status 0x%x, PCI status.interrupt %d, command.interrupt-disable %d)",
           irq, !!(status & PCI_STATUS_INTERRUPT), !!(command & PCI_COMMAND_INTX_DISABLE));
    wr32(e, REG_IRQ_ACK, ~0u);
    unmask_intx(e);
}

/* Service an interrupt: acknowledge `bits` at the card (its line drops once the interrupt
 * status is 0), then unmask INTx for the next one. Returns the interrupt status after. */
static uint32_t ack_and_unmask(struct edu *e, uint32_t bits)
{
    wr32(e, REG_IRQ_ACK, bits);
    uint32_t after = rd32(e, REG_IRQ_STATUS);
    unmask_intx(e);
    return after;
}

/* Poll the status register until the computing bit clears, as edu.rst asks. */
static bool wait_factorial(struct edu *e)
{
    uint64_t deadline = now_ms() + TIMEOUT_MS;
    while (rd32(e, REG_STATUS) & STATUS_COMPUTING)
        if (now_ms() > deadline)
            return false;
    return true;
}

/* Program a DMA transfer and poll the command register until the start bit clears (QEMU
 * completes it on a timer 100 ms later; minivirt at once). */
static bool dma(struct edu *e, uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd)
{
    wr64(e, REG_DMA_SRC, src);
    wr64(e, REG_DMA_DST, dst);
    wr64(e, REG_DMA_COUNT, count);
    __sync_synchronize(); /* the page's contents are in memory before the card reads them */
    wr64(e, REG_DMA_CMD, cmd | DMA_RUN);
    uint64_t deadline = now_ms() + TIMEOUT_MS;
    while (rd64(e, REG_DMA_CMD) & DMA_RUN) {
        if (now_ms() > deadline)
            return false;
        usleep(1000);
    }
    __sync_synchronize(); /* and we read the page only after the card wrote it */
    return true;
}

/* --- the checks ---------------------------------------------------------------------------------- */

static void check_identification(struct edu *e)
{
    uint32_t id = rd32(e, REG_ID);
    report(id == EDU_ID, "identification", "0x%08x (want 0x%08x)", id, EDU_ID);
}

/* The liveness register reads back the bitwise inverse of what was written. */
static void check_liveness(struct edu *e)
{
    static const uint32_t values[] = {0x12345678, 0x00000000, 0xffffffff, 0xa5a55a5a};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        wr32(e, REG_LIVENESS, values[i]);
        uint32_t got = rd32(e, REG_LIVENESS);
        char what[64];
        snprintf(what, sizeof what, "liveness 0x%08x", values[i]);
        report(got == ~values[i], what, "reads 0x%08x (want 0x%08x)", got, ~values[i]);
    }
}

static uint32_t factorial(uint32_t n)
{
    uint32_t r = 1;
    while (n > 0)
        r *= n--;
    return r;
}

/* n! by polling: write n, wait for the computing bit to clear, read the result. */
static void check_factorial_polled(struct edu *e, uint32_t n)
{
    char what[64];
    snprintf(what, sizeof what, "factorial(%u) polled", n);
    wr32(e, REG_FACTORIAL, n);
    if (!wait_factorial(e)) {
        report(false, what, "status bit 0x01 still set after %d ms", TIMEOUT_MS);
        return;
    }
    uint32_t got = rd32(e, REG_FACTORIAL);
    report(got == factorial(n), what, "= %u%s", got, got == factorial(n) ? "" : " (wrong)");
}

/* n! with status bit 0x80 set: the card raises interrupt status 0x1 when done. */
static void check_factorial_irq(struct edu *e, uint32_t n)
{
    char what[64];
    snprintf(what, sizeof what, "factorial(%u) irq", n);
    wr32(e, REG_FACTORIAL, n);
    if (!wait_card_interrupt(e)) {
        report_missed_interrupt(e, what);
        return;
    }
    uint32_t irq = rd32(e, REG_IRQ_STATUS), status = rd32(e, REG_STATUS);
    uint32_t got = rd32(e, REG_FACTORIAL);
    uint32_t after = ack_and_unmask(e, IRQ_FACTORIAL);
    if (irq != IRQ_FACTORIAL)
        report(false, what, "irq status 0x%x (want 0x%x)", irq, IRQ_FACTORIAL);
    else if (status & STATUS_COMPUTING)
        report(false, what, "interrupt before the computing bit cleared");
    else if (after != 0)
        report(false, what, "irq status 0x%x after ack (want 0)", after);
    else
        report(got == factorial(n), what, "= %u%s", got, got == factorial(n) ? "" : " (wrong)");
}

/* No interrupt may arrive when none was asked for (or after all were acknowledged). */
static void check_no_interrupt(struct edu *e, const char *what)
{
    bool fired = wait_interrupt(e, 100);
    uint32_t irq = rd32(e, REG_IRQ_STATUS);
    if (fired)
        report(false, what, "an interrupt arrived (irq status 0x%x)", irq);
    else
        report(irq == 0, what, "irq status 0x%x", irq);
    if (fired)
        ack_and_unmask(e, ~0u);
}

static void check_factorials(struct edu *e)
{
    wr32(e, REG_STATUS, 0); /* no interrupt when done */
    for (uint32_t n = 0; n <= 12; n++)
        check_factorial_polled(e, n);
    check_no_interrupt(e, "no interrupt without status bit 0x80");

    wr32(e, REG_STATUS, STATUS_IRQFACT);
    uint32_t status = rd32(e, REG_STATUS);
    report(status == STATUS_IRQFACT, "status bit 0x80 set", "status 0x%02x", status);
    for (uint32_t n = 0; n <= 12; n++)
        check_factorial_irq(e, n);
    wr32(e, REG_STATUS, 0);
}

/* Raise sets bits in the interrupt status and the line goes up; ack clears bits, and the line
 * drops only when none is left. */
static void check_raise_ack(struct edu *e)
{
    const uint32_t bits = 0x50000000;
    wr32(e, REG_IRQ_RAISE, bits);
    if (!wait_card_interrupt(e)) {
        report_missed_interrupt(e, "raise 0x50000000 interrupts");
        return;
    }
    report(true, "raise 0x50000000 interrupts", NULL);
    uint32_t irq = rd32(e, REG_IRQ_STATUS);
    report(irq == bits, "raise sets the interrupt status", "0x%08x", irq);
    wr32(e, REG_IRQ_ACK, 0x10000000);
    irq = rd32(e, REG_IRQ_STATUS);
    report(irq == 0x40000000, "partial ack 0x10000000", "leaves 0x%08x", irq);
    irq = ack_and_unmask(e, 0x40000000);
    report(irq == 0, "ack 0x40000000", "leaves 0x%08x", irq);
    check_no_interrupt(e, "no interrupt after the last ack");
}

/* The test pattern: different in every byte of a page, and from one round to the next. */
static void fill_pattern(uint8_t *buf, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 7 + (i >> 8) * 13 + seed);
}

static size_t first_difference(const uint8_t *a, const uint8_t *b, size_t len)
{
    size_t i = 0;
    while (i < len && a[i] == b[i])
        i++;
    return i;
}

/* The card's buffer as we expect it to be (its first DMA_LEN bytes), for the DMA and CRC
 * checks. */
static uint8_t expected_buffer[DMA_BUFFER_SIZE];

/* Read the card's buffer back into the (cleared) page and compare. */
static void check_buffer_readback(struct edu *e, const char *what)
{
    memset(e->dma_page, 0, 4096);
    if (!dma(e, DMA_BUFFER, e->dma_phys, DMA_LEN, DMA_TO_RAM)) {
        report(false, what, "command bit 0x1 still set after %d ms", TIMEOUT_MS);
        return;
    }
    size_t at = first_difference(e->dma_page, expected_buffer, DMA_LEN);
    if (at == DMA_LEN)
        report(true, what, "%d bytes from 0x%x to 0x%" PRIx64 " match", DMA_LEN, DMA_BUFFER, e->dma_phys);
    else
        report(false, what, "byte %zu is 0x%02x (want 0x%02x)", at, e->dma_page[at], expected_buffer[at]);
}

static void check_dma(struct edu *e)
{
    /* RAM -> card: (nearly) the whole buffer. */
    fill_pattern(e->dma_page, 4096, 0x5a);
    memcpy(expected_buffer, e->dma_page, DMA_BUFFER_SIZE);
    if (dma(e, e->dma_phys, DMA_BUFFER, DMA_LEN, 0))
        report(true, "dma ram->edu", "%d bytes from 0x%" PRIx64 " to 0x%x", DMA_LEN, e->dma_phys, DMA_BUFFER);
    else
        report(false, "dma ram->edu", "command bit 0x1 still set after %d ms", TIMEOUT_MS);
    /* card -> RAM: into the cleared page; it must come back identical. */
    check_buffer_readback(e, "dma edu->ram");

    /* edu.rst's example, 100 bytes, at an offset inside the buffer and with the completion
     * interrupt; the rest of the buffer must be unchanged. */
    const unsigned offset = 0x800;
    fill_pattern(e->dma_page, 100, 0xc3);
    memcpy(expected_buffer + offset, e->dma_page, 100);
    wr64(e, REG_DMA_SRC, e->dma_phys);
    wr64(e, REG_DMA_DST, DMA_BUFFER + offset);
    wr64(e, REG_DMA_COUNT, 100);
    __sync_synchronize();
    wr64(e, REG_DMA_CMD, DMA_RUN | DMA_IRQ);
    if (!wait_card_interrupt(e)) {
        report_missed_interrupt(e, "dma irq");
        /* still let the transfer finish before reading the buffer back */
        for (uint64_t deadline = now_ms() + TIMEOUT_MS; (rd64(e, REG_DMA_CMD) & DMA_RUN) && now_ms() < deadline;)
            usleep(1000);
    } else {
        uint32_t irq = rd32(e, REG_IRQ_STATUS);
        uint64_t cmd = rd64(e, REG_DMA_CMD);
        uint32_t after = ack_and_unmask(e, IRQ_DMA);
        if (irq != IRQ_DMA)
            report(false, "dma irq", "irq status 0x%x (want 0x%x)", irq, IRQ_DMA);
        else if (cmd & DMA_RUN)
            report(false, "dma irq", "interrupt before the command completed");
        else if (after != 0)
            report(false, "dma irq", "irq status 0x%x after ack (want 0)", after);
        else
            report(true, "dma irq", "100 bytes to 0x%x, irq status 0x%x", DMA_BUFFER + offset, irq);
    }
    check_buffer_readback(e, "dma edu->ram after the 100-byte write");
}

static uint32_t crc32(const uint8_t *data, size_t len)
{
    uint32_t crc = ~0u;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}

/* The minivirt extra operation: writing n to 0x40 computes the CRC-32 (zlib's) of the first
 * n bytes of the DMA buffer; 0x44 reads it, 0x40 reads n back. */
static void check_crc(struct edu *e, uint32_t count, const char *what)
{
    wr32(e, REG_CRC_COUNT, count);
    uint32_t got = rd32(e, REG_CRC_RESULT), want = crc32(expected_buffer, count);
    uint32_t count_back = rd32(e, REG_CRC_COUNT);
    if (count_back != count)
        report(false, what, "count reads %u (want %u)", count_back, count);
    else
        report(got == want, what, "crc32 0x%08x (want 0x%08x)", got, want);
}

static void check_extra(struct edu *e)
{
    check_crc(e, DMA_LEN, "extra crc32 of the buffer");
    /* The standard check value: CRC-32 of "123456789" is 0xcbf43926. */
    memcpy(e->dma_page, "123456789", 9);
    memcpy(expected_buffer, "123456789", 9);
    if (!dma(e, e->dma_phys, DMA_BUFFER, 9, 0))
        report(false, "extra crc32 of \"123456789\"", "dma did not complete");
    else
        check_crc(e, 9, "extra crc32 of \"123456789\"");
}

/* --- main ------------------------------------------------------------------------------------------ */
static void usage(FILE *f)
{
    fprintf(f, "usage: edu-test [--no-extra] | --list | --help\n"
               "  (no option)  exercise the edu PCI device 1234:11e8, one line per check\n"
               "  --no-extra   skip the minivirt extra operation (CRC-32), e.g. on QEMU's edu\n"
               "  --list       list PCI functions from /sys/bus/pci/devices, like lspci -n\n");
}

int main(int argc, char **argv)
{
    bool extra = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-extra") == 0) {
            extra = false;
        } else if (strcmp(argv[i], "--list") == 0) {
            return list_devices();
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    struct edu e = {.config_fd = -1, .uio_fd = -1};
    /* Setup steps: if one fails there is nothing more to test. */
    if (!find_device(&e) || !bind_uio(&e) || !map_bar0(&e) || !alloc_dma_page(&e))
        return summary();
    /* Start from a quiet card: nothing pending, no factorial interrupt, INTx unmasked. */
    wr32(&e, REG_STATUS, 0);
    ack_and_unmask(&e, ~0u);

    check_identification(&e);
    check_liveness(&e);
    check_factorials(&e);
    check_raise_ack(&e);
    check_dma(&e);
    if (extra)
        check_extra(&e);
    else
        printf("edu: skip extra crc32 (--no-extra)\n");
    return summary();
}
