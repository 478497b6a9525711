/*
 * hostile: attack minivirt's devices from inside the guest, then show that they still work.
 *
 *   hostile pci|edu|virtio|uart|all
 *
 * A guest is untrusted: whatever it writes to a device register or puts in a virtqueue, the
 * VMM must neither crash, hang, spin, write outside guest RAM nor grow the disk image. It
 * reports a guest error (rate-limited) and carries on. This program is that hostile guest,
 * for stage 7's checkpoint "hostile guest" (tests/checkpoints/stage07.toml): one line per
 * attack, "hostile: <device> <attack>: sent", then one line per device saying that a clean
 * request afterwards still works ("hostile: <device> clean ...: ok") or not ("FAIL").
 *
 * How it reaches the devices, as root and without a driver:
 * - MMIO registers (virtio-mmio at 0xd0000000, the edu BAR at 0xe0000000) through mmap of
 *   /dev/mem (the lab kernel has CONFIG_DEVMEM and no STRICT_DEVMEM);
 * - I/O ports (the UART at 0x3f8, PCI's 0xCF8) through /dev/port, a byte at a time: the lab
 *   kernel has no ioperm()/iopl() (CONFIG_X86_IOPL_IOPERM is off in tinyconfig);
 * - PCI configuration space through /sys/bus/pci/devices/<bdf>/config (the kernel makes the
 *   0xCF8/0xCFC accesses, dword-sized where it can) and absent functions through
 *   /sys/bus/pci/rescan, which probes every device number of bus 0 again;
 * - virtqueues in its own locked pages, whose guest-physical addresses come from
 *   /proc/self/pagemap. virtio_blk is unbound from the disk first
 *   (/sys/bus/virtio/drivers/virtio_blk/unbind) and bound again at the end, so that the
 *   guest's own driver does not share the device with us.
 *
 * Attacks that make the device read guest memory (a disk write, RAM -> edu) may point
 * anywhere; attacks that make it write guest memory point outside RAM only, so that a VMM
 * that wrongly honours them cannot corrupt the guest kernel and hide the failure.
 *
 * Exit status: 0 if every clean request afterwards worked, 1 if one did not, 2 for bad usage.
 * Built without a C library; see ../inspect/nolibc.h.
 */
#include "../inspect/nolibc.h"

#define PAGE_SIZE 4096ull
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_PFN_MASK ((1ull << 55) - 1)

/* --- a few more system calls ------------------------------------------------------------- */
struct hostile_timespec {
    long tv_sec;
    long tv_nsec;
};
static inline long sys_close(int fd) { return sys6(__NR_close, fd, 0, 0, 0, 0, 0); }
static inline void sleep_us(long us)
{
    struct hostile_timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    sys6(__NR_nanosleep, (long)&ts, 0, 0, 0, 0, 0);
}
static inline void barrier(void) { __asm__ volatile("mfence" ::: "memory"); }

/* Monotonic time in microseconds. */
static uint64_t now_us(void)
{
    struct __kernel_timespec ts;
    if (failed(sys_clock_gettime(CLOCK_MONOTONIC, &ts)))
        return 0;
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Spins until *word differs from `old` or `timeout_us` pass; returns whether it changed.
 * Spinning, not sleeping: the lab kernel's timers tick at 100 Hz, so every sleep lasts at
 * least 10 ms, and the devices answer in microseconds. */
static int wait_change16(volatile uint16_t *word, uint16_t old, uint64_t timeout_us)
{
    uint64_t deadline = now_us() + timeout_us;
    for (;;) {
        for (int i = 0; i < 4096; i++) {
            barrier();
            if (*word != old)
                return 1;
            __asm__ volatile("pause");
        }
        if (now_us() >= deadline)
            return 0;
    }
}

static int failures;

static void say(const char *a, const char *b, const char *c)
{
    struct line l;
    l.len = 0;
    put_str(&l, "hostile: ");
    put_str(&l, a);
    put_str(&l, b);
    put_str(&l, c);
    put_line(&l, 1);
}

/* "hostile: <device> <attack>: sent" */
static void sent(const char *device, const char *attack)
{
    struct line l;
    l.len = 0;
    put_str(&l, "hostile: ");
    put_str(&l, device);
    put_str(&l, " ");
    put_str(&l, attack);
    put_str(&l, ": sent");
    put_line(&l, 1);
}

/* "hostile: <device> <what>: ok|FAIL (detail hex)" */
static void check(int ok, const char *device, const char *what, const char *detail, uint64_t value)
{
    struct line l;
    l.len = 0;
    put_str(&l, "hostile: ");
    put_str(&l, device);
    put_str(&l, " ");
    put_str(&l, what);
    put_str(&l, ok ? ": ok (" : ": FAIL (");
    put_str(&l, detail);
    put_hex(&l, value);
    put_str(&l, ")");
    put_line(&l, 1);
    if (!ok)
        failures++;
}

static int die(const char *what, long err)
{
    struct line l;
    l.len = 0;
    put_str(&l, "hostile: error: ");
    put_str(&l, what);
    put_str(&l, " (errno ");
    put_dec(&l, failed(err) ? (uint64_t)-err : 0);
    put_str(&l, ")");
    put_line(&l, 2);
    sys_exit(1);
}

static int streq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* Writes a short string to a sysfs file; returns the write's result. */
static long write_file(const char *path, const char *text)
{
    size_t len = 0;
    while (text[len])
        len++;
    long fd = sys_open(path, O_WRONLY);
    if (failed(fd))
        return fd;
    long ret = sys_write((int)fd, text, len);
    sys_close((int)fd);
    return ret;
}

/* --- memory: /dev/mem windows and our own pages ---------------------------------------- */
static long devmem = -1;

static volatile uint8_t *map_phys(uint64_t phys, size_t len)
{
    if (devmem < 0) {
        devmem = sys_open("/dev/mem", O_RDWR | O_SYNC);
        if (failed(devmem))
            die("cannot open /dev/mem", devmem);
    }
    void *p = sys_mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, (int)devmem, (long)phys);
    if (failed((long)p))
        die("cannot mmap /dev/mem", (long)p);
    return (volatile uint8_t *)p;
}

struct page {
    volatile uint8_t *va;
    uint64_t gpa;
};

/* One locked anonymous page and its guest-physical address. */
static struct page own_page(void)
{
    static long pagemap = -1;
    struct page page;
    void *p = sys_mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (failed((long)p))
        die("mmap of a page failed", (long)p);
    page.va = p;
    page.va[0] = 1; /* the first write gives the page its frame */
    long err = sys_mlock(p, PAGE_SIZE);
    if (failed(err))
        die("mlock failed", err);
    if (pagemap < 0 && failed(pagemap = sys_open("/proc/self/pagemap", O_RDONLY)))
        die("cannot open /proc/self/pagemap", pagemap);
    uint64_t entry = 0;
    err = sys_pread((int)pagemap, &entry, sizeof entry, (long)((uint64_t)(uintptr_t)p / PAGE_SIZE * 8));
    if (err != 8 || !(entry & PAGEMAP_PRESENT) || !(entry & PAGEMAP_PFN_MASK))
        die("no frame in /proc/self/pagemap (not root?)", err);
    page.gpa = (entry & PAGEMAP_PFN_MASK) * PAGE_SIZE;
    for (uint64_t i = 0; i < PAGE_SIZE; i++)
        page.va[i] = 0;
    return page;
}

/* One past the last byte of guest RAM: the highest end of a "System RAM" line of /proc/iomem. */
static uint64_t ram_end(void)
{
    static char text[8192];
    long fd = sys_open("/proc/iomem", O_RDONLY);
    if (failed(fd))
        die("cannot open /proc/iomem", fd);
    long n = 0, got;
    while (n < (long)sizeof text - 1 && (got = sys_pread((int)fd, text + n, sizeof text - 1 - n, n)) > 0)
        n += got;
    sys_close((int)fd);
    text[n] = 0;
    uint64_t best = 0;
    for (char *line = text; *line;) {
        char *end = line;
        while (*end && *end != '\n')
            end++;
        /* "00100000-07ffffff : System RAM" (top level: no indentation) */
        uint64_t start = 0, last = 0;
        char *s = line;
        while ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))
            start = start * 16 + (uint64_t)(*s <= '9' ? *s - '0' : *s - 'a' + 10), s++;
        if (*s == '-') {
            s++;
            while ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))
                last = last * 16 + (uint64_t)(*s <= '9' ? *s - '0' : *s - 'a' + 10), s++;
            const char *tag = " : System RAM";
            int match = 1;
            for (int i = 0; tag[i]; i++)
                if (s[i] != tag[i])
                    match = 0;
            if (match && last + 1 > best)
                best = last + 1;
        }
        (void)start;
        line = *end ? end + 1 : end;
    }
    if (!best)
        die("no System RAM in /proc/iomem", 0);
    return best;
}

/* --- port I/O through /dev/port: one byte per access, done by the kernel --------------- */
static long devport = -1;

static uint8_t inb(uint16_t port)
{
    uint8_t v = 0xff;
    sys_pread((int)devport, &v, 1, port);
    return v;
}

static void outb(uint16_t port, uint8_t v) { sys_pwrite((int)devport, &v, 1, port); }

/* --- MMIO accessors of every width ------------------------------------------------------ */
static uint8_t r8(volatile uint8_t *b, uint64_t off) { return *(volatile uint8_t *)(b + off); }
static uint16_t r16(volatile uint8_t *b, uint64_t off) { return *(volatile uint16_t *)(b + off); }
static uint32_t r32(volatile uint8_t *b, uint64_t off) { return *(volatile uint32_t *)(b + off); }
static uint64_t r64(volatile uint8_t *b, uint64_t off) { return *(volatile uint64_t *)(b + off); }
static void w8(volatile uint8_t *b, uint64_t off, uint8_t v) { *(volatile uint8_t *)(b + off) = v; }
static void w16(volatile uint8_t *b, uint64_t off, uint16_t v) { *(volatile uint16_t *)(b + off) = v; }
static void w32(volatile uint8_t *b, uint64_t off, uint32_t v) { *(volatile uint32_t *)(b + off) = v; }
static void w64(volatile uint8_t *b, uint64_t off, uint64_t v) { *(volatile uint64_t *)(b + off) = v; }

/* ========================================================================================= */
/* PCI: configuration space through sysfs, absent functions through a rescan               */
/* ========================================================================================= */
#define EDU_SYSFS "/sys/bus/pci/devices/0000:00:01.0/"
#define HOST_BRIDGE_SYSFS "/sys/bus/pci/devices/0000:00:00.0/"
#define EDU_BAR0 0xe0000000u
#define PCI_COMMAND_MEMORY_AND_MASTER 0x0006

static long config_write32(long fd, long off, uint32_t v) { return sys_pwrite((int)fd, &v, 4, off); }
static uint32_t config_read32(long fd, long off)
{
    uint32_t v = 0;
    sys_pread((int)fd, &v, 4, off);
    return v;
}

static void attack_pci(void)
{
    long edu = sys_open(EDU_SYSFS "config", O_RDWR);
    long bridge = sys_open(HOST_BRIDGE_SYSFS "config", O_RDWR);
    if (failed(edu) || failed(bridge))
        die("cannot open the PCI config files in /sys/bus/pci/devices", failed(edu) ? edu : bridge);
    uint8_t saved[64];
    if (sys_pread((int)edu, saved, sizeof saved, 0) != (long)sizeof saved)
        die("cannot read edu's configuration header", 0);

    /* Absent functions: the kernel probes every device number of bus 0 (and reads all ones). */
    write_file("/sys/bus/pci/rescan", "1");
    sent("pci", "rescan of bus 0 (absent functions)");

    /* BAR sizing with all ones, while memory decoding is on: the BAR moves to 0xfff00000,
     * over the IO-APIC and the local APICs, where the VMM must refuse to map it. */
    config_write32(edu, 0x10, 0xffffffffu);
    uint32_t size_mask = config_read32(edu, 0x10);
    sent("pci", "BAR 0 all ones with memory decoding on");
    for (long bar = 0x14; bar <= 0x24; bar += 4)
        config_write32(edu, bar, 0xffffffffu);
    config_write32(edu, 0x30, 0xffffffffu); /* expansion ROM */
    for (long bar = 0x10; bar <= 0x24; bar += 4)
        config_write32(bridge, bar, 0xffffffffu);
    sent("pci", "BARs 1-5, expansion ROM and host bridge BARs all ones");

    /* BAR 0 over RAM at 1 MiB, then over the IO-APIC: both take precedence over a BAR, so
     * the VMM must refuse to map it there. */
    config_write32(edu, 0x10, 0x00100000u);
    sent("pci", "BAR 0 over guest RAM");
    config_write32(edu, 0x10, 0xfec00000u);
    sent("pci", "BAR 0 over the IO-APIC");

    /* All ones over the whole configuration space, read-only registers included. */
    uint8_t ones[256];
    for (int i = 0; i < 256; i++)
        ones[i] = 0xff;
    sys_pwrite((int)edu, ones, sizeof ones, 0);
    sys_pwrite((int)bridge, ones + 64, sizeof ones - 64, 64);
    sent("pci", "all ones over edu's configuration space");

    /* Narrow accesses to CONFIG_ADDRESS: only a dword there is the latch. */
    for (uint16_t port = 0xcf8; port < 0xcfc; port++)
        outb(port, 0xff);
    for (uint16_t port = 0xcf8; port < 0xd00; port++)
        (void)inb(port);
    sent("pci", "byte accesses to 0xcf8-0xcff");

    /* Put the header back as the kernel left it (BARs, ROM, interrupt line), with memory
     * decoding and bus mastering. */
    sys_pwrite((int)edu, saved + 0x10, 0x40 - 0x10, 0x10);
    uint16_t command = PCI_COMMAND_MEMORY_AND_MASTER;
    sys_pwrite((int)edu, &command, 2, 4);
    uint32_t vendor = config_read32(edu, 0);
    uint32_t bar0 = config_read32(edu, 0x10);
    check(size_mask == 0xfff00000u, "pci", "BAR 0 size mask", "read back ", size_mask);
    check(vendor == 0x11e81234u && bar0 == EDU_BAR0, "pci", "clean config read after the attacks",
          "vendor:device and BAR 0 ", (uint64_t)vendor << 32 | bar0);
    sys_close((int)edu);
    sys_close((int)bridge);
}

/* ========================================================================================= */
/* edu: DMA outside RAM and the buffer, huge counts, every register at every width          */
/* ========================================================================================= */
#define EDU_LIVENESS 0x04
#define EDU_FACTORIAL 0x08
#define EDU_STATUS 0x20
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_BUFFER 0x40000ull
#define EDU_DMA_RUN 1
#define EDU_DMA_TO_RAM 2

static void edu_dma(volatile uint8_t *edu, uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd)
{
    w64(edu, EDU_DMA_SRC, src);
    w64(edu, EDU_DMA_DST, dst);
    w64(edu, EDU_DMA_COUNT, count);
    w64(edu, EDU_DMA_CMD, cmd | EDU_DMA_RUN);
    uint64_t deadline = now_us() + 1000000;
    while ((r64(edu, EDU_DMA_CMD) & EDU_DMA_RUN) && now_us() < deadline)
        ;
}

static uint32_t edu_factorial(volatile uint8_t *edu, uint32_t n)
{
    w32(edu, EDU_FACTORIAL, n);
    uint64_t deadline = now_us() + 2000000;
    while ((r32(edu, EDU_STATUS) & 1) && now_us() < deadline)
        ;
    return r32(edu, EDU_FACTORIAL);
}

static void attack_edu(uint64_t ram)
{
    volatile uint8_t *edu = map_phys(EDU_BAR0, 1 << 20);
    /* DMA needs bus mastering: the PCI part leaves it on, do it here too for `hostile edu`. */
    long cfg = sys_open(EDU_SYSFS "config", O_RDWR);
    uint16_t command = PCI_COMMAND_MEMORY_AND_MASTER;
    if (!failed(cfg)) {
        sys_pwrite((int)cfg, &command, 2, 4);
        sys_close((int)cfg);
    }

    edu_dma(edu, 0xd0000000ull, EDU_DMA_BUFFER, 64, 0); /* source: the virtio window, not RAM */
    edu_dma(edu, 0x0ffff000ull, EDU_DMA_BUFFER, 64, 0); /* source: inside the mask, past RAM */
    sent("edu", "DMA from outside RAM");
    edu_dma(edu, EDU_DMA_BUFFER, ram, 64, EDU_DMA_TO_RAM); /* just past the end of RAM */
    edu_dma(edu, EDU_DMA_BUFFER, 0xffffffffffffff00ull, 64, EDU_DMA_TO_RAM);
    sent("edu", "DMA to outside RAM");
    edu_dma(edu, EDU_DMA_BUFFER, ram - 32, 64, EDU_DMA_TO_RAM);
    edu_dma(edu, ram - 32, EDU_DMA_BUFFER, 64, 0);
    sent("edu", "DMA across the end of RAM");
    edu_dma(edu, 0x1000, EDU_DMA_BUFFER, 0xffffffffffffffffull, 0);
    edu_dma(edu, EDU_DMA_BUFFER, 0x1000, 0xffffffffffffffffull, EDU_DMA_TO_RAM);
    edu_dma(edu, 0xffffffffffffffffull, EDU_DMA_BUFFER, 4096, 0);
    edu_dma(edu, 0x1000, 0xfffffffffffffff0ull, 0x20, 0); /* buffer address + count wraps */
    sent("edu", "DMA with huge counts and wrapping addresses");

    /* Every register offset, read at every width; then the rest of the first page, sparsely
     * (each MMIO access is a VM exit, slow under nested KVM). */
    for (uint64_t off = 0; off < PAGE_SIZE; off += off < 0x100 ? 8 : 0xf8) {
        (void)r8(edu, off + 1);
        (void)r16(edu, off + 2);
        (void)r32(edu, off + 4);
        (void)r64(edu, off);
    }
    (void)r32(edu, (1 << 20) - 4); /* the last dword of the BAR */
    sent("edu", "reads of every offset at every width");
    w32(edu, EDU_IRQ_RAISE, 0xffffffffu);
    w32(edu, EDU_IRQ_ACK, 0xffffffffu);
    w8(edu, EDU_FACTORIAL + 1, 0xff);  /* a byte of a 32-bit register */
    w64(edu, EDU_FACTORIAL, 0xffffffffffffffffull);
    w32(edu, EDU_FACTORIAL, 0xffffffffu); /* then a write while it computes */
    w32(edu, EDU_STATUS, 0xffffffffu);
    uint64_t deadline = now_us() + 2000000;
    while ((r32(edu, EDU_STATUS) & 1) && now_us() < deadline)
        ;
    w32(edu, EDU_STATUS, 0);
    w32(edu, EDU_IRQ_ACK, 0xffffffffu);
    sent("edu", "all ones into every control register");

    /* Still alive: liveness inverts, factorial(10) is 3628800, a DMA round trip works. */
    w32(edu, EDU_LIVENESS, 0x12345678u);
    uint32_t liveness = r32(edu, EDU_LIVENESS);
    uint32_t fact = edu_factorial(edu, 10);
    struct page buf = own_page();
    for (int i = 0; i < 64; i++)
        buf.va[i] = (uint8_t)(i * 7 + 1);
    edu_dma(edu, buf.gpa, EDU_DMA_BUFFER, 64, 0);
    edu_dma(edu, EDU_DMA_BUFFER, buf.gpa + 1024, 64, EDU_DMA_TO_RAM);
    int same = 1;
    for (int i = 0; i < 64; i++)
        same &= buf.va[1024 + i] == buf.va[i];
    check(liveness == ~0x12345678u, "edu", "clean liveness after the attacks", "reads ", liveness);
    check(fact == 3628800, "edu", "clean factorial(10) after the attacks", "", fact);
    check(same, "edu", "clean DMA round trip after the attacks", "64 bytes at ", buf.gpa);
}

/* ========================================================================================= */
/* virtio-blk through virtio-mmio                                                            */
/* ========================================================================================= */
#define VIRTIO_BASE 0xd0000000ull
#define VIRTIO_DEVICE "virtio0"
#define VIRTIO_BLK_DRIVER "/sys/bus/virtio/drivers/virtio_blk/"
/* register offsets, virtio 1.2 §4.2.2 */
#define MMIO_MAGIC 0x000
#define MMIO_DRIVER_FEATURES 0x020
#define MMIO_DRIVER_FEATURES_SEL 0x024
#define MMIO_QUEUE_SEL 0x030
#define MMIO_QUEUE_NUM_MAX 0x034
#define MMIO_QUEUE_NUM 0x038
#define MMIO_QUEUE_READY 0x044
#define MMIO_QUEUE_NOTIFY 0x050
#define MMIO_INTERRUPT_STATUS 0x060
#define MMIO_INTERRUPT_ACK 0x064
#define MMIO_STATUS 0x070
#define MMIO_QUEUE_DESC 0x080
#define MMIO_QUEUE_DRIVER 0x090
#define MMIO_QUEUE_DEVICE 0x0a0
#define MMIO_CONFIG 0x100
#define STATUS_ACK 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_GET_ID 8
#define QSIZE 16

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static volatile uint8_t *vio;
static struct page desc_page, avail_page, used_page, req_page, data_page;
static uint16_t avail_idx;

#define DESC ((volatile struct virtq_desc *)desc_page.va)
#define AVAIL_IDX (*(volatile uint16_t *)(avail_page.va + 2))
#define AVAIL_RING(i) (*(volatile uint16_t *)(avail_page.va + 4 + 2 * (i)))
#define USED_IDX (*(volatile uint16_t *)(used_page.va + 2))
#define USED_LEN(i) (*(volatile uint32_t *)(used_page.va + 4 + 8 * (i) + 4))

static void w64split(uint64_t off, uint64_t v)
{
    w32(vio, off, (uint32_t)v);
    w32(vio, off + 4, (uint32_t)(v >> 32));
}

/* Reset, then the driver's handshake with queue 0 at the given areas; returns QueueReady. */
static uint32_t virtio_setup(uint32_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
    w32(vio, MMIO_STATUS, 0);
    w32(vio, MMIO_STATUS, STATUS_ACK);
    w32(vio, MMIO_STATUS, STATUS_ACK | STATUS_DRIVER);
    w32(vio, MMIO_DRIVER_FEATURES_SEL, 1);
    w32(vio, MMIO_DRIVER_FEATURES, 1); /* VIRTIO_F_VERSION_1, bit 32 */
    w32(vio, MMIO_DRIVER_FEATURES_SEL, 0);
    w32(vio, MMIO_DRIVER_FEATURES, 0);
    w32(vio, MMIO_STATUS, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK);
    w32(vio, MMIO_QUEUE_SEL, 0);
    w32(vio, MMIO_QUEUE_NUM, size);
    w64split(MMIO_QUEUE_DESC, desc);
    w64split(MMIO_QUEUE_DRIVER, avail);
    w64split(MMIO_QUEUE_DEVICE, used);
    w32(vio, MMIO_QUEUE_READY, 1);
    uint32_t ready = r32(vio, MMIO_QUEUE_READY);
    w32(vio, MMIO_STATUS, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    for (uint64_t i = 0; i < PAGE_SIZE; i++)
        avail_page.va[i] = used_page.va[i] = 0;
    avail_idx = 0;
    return ready;
}

static uint32_t virtio_fresh(void)
{
    return virtio_setup(QSIZE, desc_page.gpa, avail_page.gpa, used_page.gpa);
}

static void set_desc(int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    DESC[i].addr = addr;
    DESC[i].len = len;
    DESC[i].flags = flags;
    DESC[i].next = next;
}

/* A request header for `type` at `sector`, in req_page. */
static void set_header(uint32_t type, uint64_t sector)
{
    *(volatile uint32_t *)(req_page.va + 0) = type;
    *(volatile uint32_t *)(req_page.va + 4) = 0;
    *(volatile uint64_t *)(req_page.va + 8) = sector;
    req_page.va[512] = 0xee; /* the status byte: the device overwrites it */
}

/* Header, one data buffer, status: the usual three-descriptor request as chain 0. */
static void request3(uint32_t type, uint64_t sector, uint64_t data, uint32_t len)
{
    set_header(type, sector);
    uint16_t data_flags = type == VIRTIO_BLK_T_OUT ? 0 : VIRTQ_DESC_F_WRITE;
    set_desc(0, req_page.gpa, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, data, len, data_flags | VIRTQ_DESC_F_NEXT, 2);
    set_desc(2, req_page.gpa + 512, 1, VIRTQ_DESC_F_WRITE, 0);
}

/* Makes `head` available (the ring slot may be chosen by the caller) and notifies; waits a
 * little for the used ring to move. Returns whether it did. */
static int submit_at(uint16_t slot, uint16_t head, uint16_t count)
{
    uint16_t used_before = USED_IDX;
    AVAIL_RING(slot % QSIZE) = head;
    barrier();
    avail_idx = (uint16_t)(avail_idx + count);
    AVAIL_IDX = avail_idx;
    barrier();
    w32(vio, MMIO_QUEUE_NOTIFY, 0);
    return wait_change16(&USED_IDX, used_before, 50000);
}

static int submit(uint16_t head) { return submit_at(avail_idx, head, 1); }

static void attack_virtio(uint64_t ram)
{
    /* Take the disk away from the guest's driver (it resets the device on the way out). */
    long err = write_file(VIRTIO_BLK_DRIVER "unbind", VIRTIO_DEVICE);
    if (failed(err))
        die("cannot unbind " VIRTIO_DEVICE " from virtio_blk", err);
    vio = map_phys(VIRTIO_BASE, 2 * PAGE_SIZE); /* our window and the (empty) next one */
    if (r32(vio, MMIO_MAGIC) != 0x74726976u)
        die("no virtio-mmio device at 0xd0000000", 0);
    desc_page = own_page();
    avail_page = own_page();
    used_page = own_page();
    req_page = own_page();
    data_page = own_page();
    uint64_t capacity = r64(vio, MMIO_CONFIG); /* sectors */
    uint64_t sector_past_end = capacity;

    /* --- descriptor chains ---------------------------------------------------------------- */
    virtio_fresh();
    set_header(VIRTIO_BLK_T_IN, 0);
    set_desc(0, req_page.gpa, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, data_page.gpa, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0); /* back to 0 */
    submit(0);
    virtio_fresh();
    set_desc(0, req_page.gpa, 16, VIRTQ_DESC_F_NEXT, 0); /* itself */
    submit(0);
    sent("virtio", "descriptor loop");

    virtio_fresh();
    request3(VIRTIO_BLK_T_IN, 0, 0xc0000000ull, 512); /* in the device hole */
    submit(0);
    request3(VIRTIO_BLK_T_IN, 0, ram, 512); /* just past the end of RAM */
    submit(0);
    request3(VIRTIO_BLK_T_IN, 0, 0xfffffffffffff000ull, 0x2000); /* wraps around */
    submit(0);
    virtio_fresh();
    set_header(VIRTIO_BLK_T_IN, 0);
    set_desc(0, 0xc0000000ull, 16, VIRTQ_DESC_F_NEXT, 1); /* the header itself outside RAM */
    set_desc(1, data_page.gpa, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    set_desc(2, 0xc0000000ull, 1, VIRTQ_DESC_F_WRITE, 0); /* and the status */
    submit(0);
    sent("virtio", "buffers outside RAM");

    virtio_fresh();
    request3(VIRTIO_BLK_T_OUT, capacity - 8, ram - 0x800, 0x1000);
    submit(0);
    sent("virtio", "buffer across the end of RAM");
    request3(VIRTIO_BLK_T_OUT, capacity - 8, 0x9f800, 0x1000); /* 640 KiB: the legacy window */
    submit(0);
    sent("virtio", "buffer across a hole");

    virtio_fresh();
    request3(VIRTIO_BLK_T_IN, 0, data_page.gpa, 0xffffffffu);
    submit(0);
    request3(VIRTIO_BLK_T_OUT, 0, data_page.gpa, 0xffffffffu);
    submit(0);
    virtio_fresh();
    set_header(VIRTIO_BLK_T_IN, 0);
    set_desc(0, req_page.gpa, 16, VIRTQ_DESC_F_NEXT, 1);
    for (int i = 1; i < 5; i++) /* lengths that add up past 4 GiB */
        set_desc(i, data_page.gpa, 0xf0000000u, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
    set_desc(5, req_page.gpa + 512, 1, VIRTQ_DESC_F_WRITE, 0);
    submit(0);
    sent("virtio", "huge lengths");

    virtio_fresh();
    request3(VIRTIO_BLK_T_IN, 0, data_page.gpa, 0);
    submit(0);
    request3(VIRTIO_BLK_T_IN, 0, data_page.gpa, 512);
    DESC[0].len = 0;
    submit(0);
    request3(VIRTIO_BLK_T_IN, 0, data_page.gpa, 512);
    DESC[2].len = 0;
    submit(0);
    request3(VIRTIO_BLK_T_IN, 0, data_page.gpa, 511); /* not a whole sector */
    submit(0);
    sent("virtio", "zero lengths");

    virtio_fresh();
    request3(VIRTIO_BLK_T_IN, 0, data_page.gpa, 512);
    submit(300); /* head beyond the queue */
    virtio_fresh();
    request3(VIRTIO_BLK_T_IN, 0, data_page.gpa, 512);
    DESC[1].next = 999; /* next beyond the queue */
    submit(0);
    virtio_fresh();
    request3(VIRTIO_BLK_T_IN, 0, data_page.gpa, 512);
    submit_at(0, 0, 1000); /* the available index jumps by more than the queue size */
    sent("virtio", "indices out of range");

    virtio_fresh();
    request3(VIRTIO_BLK_T_IN, sector_past_end, data_page.gpa, 512);
    submit(0);
    request3(VIRTIO_BLK_T_IN, capacity - 1, data_page.gpa, 4096); /* across the end */
    submit(0);
    request3(VIRTIO_BLK_T_OUT, sector_past_end, data_page.gpa, 512); /* would grow the image */
    submit(0);
    request3(VIRTIO_BLK_T_OUT, capacity + 1000000, data_page.gpa, 4096);
    submit(0);
    request3(VIRTIO_BLK_T_OUT, capacity - 1, data_page.gpa, 4096);
    submit(0);
    sent("virtio", "sectors past the end");
    request3(VIRTIO_BLK_T_IN, 0xffffffffffffffffull, data_page.gpa, 512);
    submit(0);
    request3(VIRTIO_BLK_T_OUT, 0xffffffffffffffffull, data_page.gpa, 512);
    submit(0);
    request3(VIRTIO_BLK_T_OUT, 1ull << 55, data_page.gpa, 512); /* sector * 512 overflows */
    submit(0);
    request3(VIRTIO_BLK_T_OUT, (1ull << 55) - 1, data_page.gpa, 1024); /* the end overflows */
    submit(0);
    sent("virtio", "sectors overflowing");
    request3(0xff, 0, data_page.gpa, 512); /* unknown request type */
    submit(0);
    request3(VIRTIO_BLK_T_GET_ID, 0, data_page.gpa, 3); /* serial into 3 bytes */
    submit(0);
    sent("virtio", "unknown request type and short GET_ID");

    /* --- queue setup ----------------------------------------------------------------------- */
    /* 16-bit sizes the queue must refuse to enable with. */
    uint32_t sizes[] = { 3, 0, 100, 257, 0xffff };
    uint32_t ready_bad_size = 0;
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        ready_bad_size |= virtio_setup(sizes[i], desc_page.gpa, avail_page.gpa, used_page.gpa);
    /* Beyond 16 bits the write itself is refused and the queue keeps its size (after a reset,
     * the maximum), which fits our pages: whether it becomes ready then is not checked. */
    virtio_setup(0x10000, desc_page.gpa, avail_page.gpa, used_page.gpa);
    virtio_setup(0x10010, desc_page.gpa, avail_page.gpa, used_page.gpa);
    virtio_setup(0xffffffffu, desc_page.gpa, avail_page.gpa, used_page.gpa);
    sent("virtio", "queue sizes that are not powers of two");
    uint32_t ready_outside = 0;
    ready_outside |= virtio_setup(QSIZE, 0xc0000000ull, avail_page.gpa, used_page.gpa);
    ready_outside |= virtio_setup(QSIZE, desc_page.gpa, ram - 2, used_page.gpa);
    ready_outside |= virtio_setup(QSIZE, desc_page.gpa, avail_page.gpa, ram - 4);
    ready_outside |= virtio_setup(QSIZE, desc_page.gpa, avail_page.gpa, 0xfffffffffffffffcull);
    ready_outside |= virtio_setup(QSIZE, desc_page.gpa + 1, avail_page.gpa, used_page.gpa);
    sent("virtio", "rings outside RAM and misaligned");
    check(!ready_bad_size && !ready_outside, "virtio", "bad queues are not enabled", "QueueReady ",
          ready_bad_size | ready_outside);

    /* --- notifications and registers ------------------------------------------------------- */
    virtio_fresh();
    for (int i = 0; i < 2000; i++)
        w32(vio, MMIO_QUEUE_NOTIFY, 0);
    for (uint32_t q = 1; q < 64; q++)
        w32(vio, MMIO_QUEUE_NOTIFY, q * 0x01010101u);
    w32(vio, MMIO_STATUS, 0);
    for (int i = 0; i < 100; i++)
        w32(vio, MMIO_QUEUE_NOTIFY, 0); /* before DRIVER_OK */
    sent("virtio", "notify storm");

    virtio_fresh();
    for (uint64_t off = 0; off < PAGE_SIZE; off += off < 0x200 ? 4 : 0x40)
        (void)r32(vio, off);
    for (uint64_t off = 0; off < 0x100; off += 8) {
        (void)r8(vio, off + 1);
        (void)r16(vio, off + 2);
        (void)r64(vio, off);
    }
    (void)r32(vio, MMIO_STATUS + 1); /* unaligned */
    w8(vio, MMIO_STATUS, 0x7f);
    w16(vio, MMIO_QUEUE_SEL, 0xffff);
    w64(vio, MMIO_QUEUE_NUM, 0xffffffffffffffffull);
    w32(vio, MMIO_INTERRUPT_ACK, 0xffffffffu);
    w32(vio, 0x0c0, 0xffffffffu); /* reserved */
    w32(vio, MMIO_CONFIG, 0xffffffffu); /* capacity is read-only */
    w64(vio, MMIO_CONFIG + 0xef8, 0xffffffffffffffffull); /* the end of the window */
    (void)r32(vio, PAGE_SIZE - 2); /* straddles the end of the window */
    (void)r32(vio, PAGE_SIZE);     /* the next window: no device */
    w32(vio, PAGE_SIZE + MMIO_STATUS, 0xffffffffu);
    sent("virtio", "odd-width and out-of-window register accesses");
    (void)r32(vio, MMIO_INTERRUPT_STATUS);

    /* --- a clean request: the ext4 superblock (byte 1024, sector 2) ------------------------ */
    uint32_t ready = virtio_fresh();
    request3(VIRTIO_BLK_T_IN, 2, data_page.gpa, 512);
    for (int i = 0; i < 512; i++)
        data_page.va[i] = 0;
    int done = submit(0);
    uint16_t magic = *(volatile uint16_t *)(data_page.va + 0x38);
    const char *label = "minivirt";
    int label_ok = 1;
    for (int i = 0; label[i]; i++)
        label_ok &= data_page.va[0x78 + i] == (uint8_t)label[i];
    check(ready && done && req_page.va[512] == 0 && USED_LEN(0) == 513, "virtio",
          "clean read after the attacks", "status ", req_page.va[512]);
    check(magic == 0xef53 && label_ok, "virtio", "sector 2 holds the ext4 superblock of 'minivirt'",
          "magic ", magic);
    check(r64(vio, MMIO_CONFIG) == capacity, "virtio", "capacity unchanged", "sectors ", capacity);

    /* Give the disk back: the driver's probe expects ACKNOWLEDGE, as the core left it. */
    w32(vio, MMIO_STATUS, 0);
    w32(vio, MMIO_STATUS, STATUS_ACK);
    err = write_file(VIRTIO_BLK_DRIVER "bind", VIRTIO_DEVICE);
    check(!failed(err), "virtio", "virtio_blk bound again", "write returned ", (uint64_t)err);
}

/* ========================================================================================= */
/* the UART: every offset read, register floods                                              */
/* ========================================================================================= */
#define COM1 0x3f8
#define UART_LCR 3
#define UART_MCR 4
#define UART_IER 1
#define UART_FCR 2
#define UART_IIR 2
#define UART_LSR 5
#define UART_MSR 6
#define LSR_DATA_READY 0x01
#define UART_SCR 7
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10

/* Reads the receive buffer until the line status says it is empty. */
static void drain_rx(void)
{
    for (int i = 0; i < 1000 && (inb(COM1 + UART_LSR) & LSR_DATA_READY); i++)
        (void)inb(COM1);
}

static void attack_uart(void)
{
    /* Let the console finish what it was sending: the floods below garble output in flight. */
    sleep_us(300000);
    /* What the kernel's 8250 driver set up, to put back afterwards. */
    uint8_t lcr = inb(COM1 + UART_LCR), mcr = inb(COM1 + UART_MCR), ier = inb(COM1 + UART_IER);
    outb(COM1 + UART_LCR, lcr | LCR_DLAB);
    uint8_t dll = inb(COM1 + 0), dlm = inb(COM1 + 1);
    outb(COM1 + UART_LCR, lcr);
    /* No interrupts while we play: the kernel's handler would take the looped-back bytes as
     * console input and echo them. */
    outb(COM1 + UART_IER, 0);

    for (int round = 0; round < 4; round++)
        for (uint16_t off = 0; off < 8; off++)
            (void)inb((uint16_t)(COM1 + off));
    outb(COM1 + UART_LCR, lcr | LCR_DLAB);
    for (uint16_t off = 0; off < 8; off++)
        (void)inb((uint16_t)(COM1 + off));
    outb(COM1 + UART_LCR, lcr);
    sent("uart", "reads of every offset");

    /* Loopback: what goes out comes back in; 200 bytes into a receive FIFO of 16 or 64.
     * (Few: each /dev/port byte is a system call, and those are slow under nested KVM.) */
    outb(COM1 + UART_MCR, mcr | MCR_LOOP);
    for (int i = 0; i < 200; i++)
        outb(COM1, (uint8_t)('a' + i % 26));
    drain_rx();
    outb(COM1 + UART_MCR, mcr);
    sent("uart", "transmit flood in loopback mode");

    for (int i = 0; i < 100; i++)
        outb(COM1 + UART_SCR, (uint8_t)i);
    for (int i = 0; i < 20; i++) {
        outb(COM1 + UART_FCR, 0xff);
        outb(COM1 + UART_LCR, 0xff);
        outb(COM1 + UART_MCR, 0xff); /* loopback, so that nothing leaves */
        outb(COM1 + UART_IER, 0xff);
        outb(COM1 + UART_IER, 0);
        outb(COM1 + UART_LSR, 0xff); /* LSR and MSR are read-only */
        outb(COM1 + UART_MSR, 0xff);
    }
    outb(COM1 + UART_LCR, lcr | LCR_DLAB);
    outb(COM1 + 0, 0); /* divisor 0 */
    outb(COM1 + 1, 0);
    outb(COM1 + 0, dll);
    outb(COM1 + 1, dlm);
    outb(COM1 + UART_LCR, lcr);
    drain_rx();
    outb(COM1 + UART_MCR, mcr);
    outb(COM1 + UART_FCR, 0x07); /* FIFOs on and cleared, as the driver had them */
    (void)inb(COM1 + UART_LSR);
    (void)inb(COM1 + UART_MSR);
    (void)inb(COM1 + UART_IIR);
    outb(COM1 + UART_IER, ier);
    sent("uart", "register floods");

    /* The scratch register still holds what we write. The console still printing is the
     * other check: every line after this one. */
    outb(COM1 + UART_SCR, 0x5a);
    uint8_t scr = inb(COM1 + UART_SCR);
    check(scr == 0x5a && inb(COM1 + UART_LCR) == lcr, "uart", "clean registers after the attacks",
          "scratch ", scr);
}

/* "hostile: <device> took N ms", for whoever wonders where a slow run spent its time. */
static void took(const char *device, uint64_t *start)
{
    uint64_t now = now_us();
    struct line l;
    l.len = 0;
    put_str(&l, "hostile: ");
    put_str(&l, device);
    put_str(&l, " took ");
    put_dec(&l, (now - *start) / 1000);
    put_str(&l, " ms");
    put_line(&l, 1);
    *start = now;
}

/* Whether the small file `path` starts with `want`. */
static int file_has(const char *path, const char *want, int anywhere)
{
    static char text[4096];
    long fd = sys_open(path, O_RDONLY);
    if (failed(fd))
        return 0;
    long n = sys_pread((int)fd, text, sizeof text - 1, 0);
    sys_close((int)fd);
    if (n <= 0)
        return 0;
    text[n] = 0;
    for (long start = 0; start < n; start++) {
        int i = 0;
        while (want[i] && text[start + i] == want[i])
            i++;
        if (!want[i])
            return 1;
        if (!anywhere)
            return 0;
    }
    return 0;
}

/* As root this program pokes real hardware: it refuses to run anywhere but on minivirt's
 * board, recognised by its devices (the edu card at 00:01.0, the disk on the command line). */
static void require(int present, const char *what)
{
    if (!present) {
        say("error: not minivirt's board (", what, "): refusing to attack this machine");
        sys_exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *what = argc == 2 ? argv[1] : "";
    int all = streq(what, "all");
    if (!all && !streq(what, "pci") && !streq(what, "edu") && !streq(what, "virtio") && !streq(what, "uart")) {
        say("usage: hostile pci|edu|virtio|uart|all", "", "");
        return 2;
    }
    if (!streq(what, "virtio"))
        require(file_has(EDU_SYSFS "vendor", "0x1234", 0) && file_has(EDU_SYSFS "device", "0x11e8", 0),
                "no edu card at 0000:00:01.0");
    if (all || streq(what, "virtio"))
        require(file_has("/proc/cmdline", "virtio_mmio.device=4K@0xd0000000:", 1),
                "no virtio-mmio disk at 0xd0000000 on the command line");
    devport = sys_open("/dev/port", O_RDWR);
    if (failed(devport))
        die("cannot open /dev/port", devport);
    uint64_t ram = ram_end();
    /* PCI and edu first: their guest errors are few, and the VMM prints only the first 20. */
    uint64_t start = now_us();
    if (all || streq(what, "pci"))
        attack_pci(), took("pci", &start);
    if (all || streq(what, "edu"))
        attack_edu(ram), took("edu", &start);
    if (all || streq(what, "virtio"))
        attack_virtio(ram), took("virtio", &start);
    if (all || streq(what, "uart"))
        attack_uart(), took("uart", &start);
    say(failures ? "some clean requests failed" : "every device still works", "", "");
    return failures ? 1 : 0;
}
