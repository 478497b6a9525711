/*
 * workloads: the guest-against-host benchmarks of the measurement lab (`bench guest`), the
 * seed report's sysbench rows in one small program. The same source runs in the guest (built
 * into the initramfs as /usr/bin/workloads by labs/guest/build.sh) and on the host (`bench`
 * compiles it with the same gcc command into target/bench/workloads), so both sides run the
 * same machine code.
 *
 *   workloads cpu SECONDS        count primes by trial division, as `sysbench cpu` does
 *   workloads mem                memory bandwidth: sequential and random reads and writes
 *                                over a block-size sweep (1 KiB to 1 MiB)
 *   workloads fileio PATH [MIB]  on a block device (/dev/vda in the guest) or a file of that
 *                                size (the host): sequential write and read, then random
 *                                4 KiB reads with latency percentiles, all with O_DIRECT
 *
 * Output: one line per measurement, `bench: WORKLOAD key=value ...`, integers only (bytes,
 * nanoseconds, counts): `bench` computes the rates. An error is one line on stderr and exit
 * status 1; bad usage exits 2.
 *
 * Why no C library: every byte of the initramfs is unpacked by the guest kernel at each boot,
 * and that is slow under the course's nested KVM; this is about 14 KB, static glibc about
 * 700 KB (see ../inspect/nolibc.h). Why the clock is read seldom: in the guest each system
 * call is a trip through the VMM's host workarounds, so the timed loops read the clock only
 * every few milliseconds of work.
 *
 * Resources: sysbench's cpu test (src/tests/cpu/sb_cpu.c: for c in 3..max_prime, trial
 * division up to sqrt(c)); memory test (src/tests/memory/sb_memory.c); fileio (O_DIRECT with
 * --file-extra-flags=direct). open(2) on O_DIRECT alignment.
 */
#include "../inspect/nolibc.h"

/* gcc may turn loops into calls of these even without a C library; give it its own. */
void *memset(void *dest, int c, size_t n)
{
    unsigned char *d = dest;
    while (n--)
        *d++ = (unsigned char)c;
    return dest;
}

void *memcpy(void *dest, const void *src, size_t n)
{
    unsigned char *d = dest;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dest;
}

/* --- a few more system calls ------------------------------------------------------------- */
#define SEEK_END 2

static long sys_open3(const char *path, int flags, int mode) { return sys6(__NR_openat, AT_FDCWD, (long)path, flags, mode, 0, 0); }
static long sys_close(int fd) { return sys6(__NR_close, fd, 0, 0, 0, 0, 0); }
static long sys_lseek(int fd, long off, int whence) { return sys6(__NR_lseek, fd, off, whence, 0, 0, 0); }
static long sys_fdatasync(int fd) { return sys6(__NR_fdatasync, fd, 0, 0, 0, 0, 0); }

static uint64_t now_ns(void)
{
    struct __kernel_timespec ts;
    sys_clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *alloc(size_t len)
{
    void *p = sys_mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return failed((long)p) ? 0 : p;
}

/* --- output ----------------------------------------------------------------------------- */
static void put_kv(struct line *l, const char *key, uint64_t value)
{
    put_str(l, " ");
    put_str(l, key);
    put_str(l, "=");
    put_dec(l, value);
}

static int fail(const char *what, long err)
{
    struct line l = {.len = 0};
    put_str(&l, "workloads: ");
    put_str(&l, what);
    if (failed(err)) {
        put_str(&l, " (errno ");
        put_dec(&l, (uint64_t)-err);
        put_str(&l, ")");
    }
    put_line(&l, 2);
    return 1;
}

/* xorshift64: a fast, repeatable random sequence (Marsaglia 2003). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* --- cpu: sysbench's prime test ------------------------------------------------------------ */
#define MAX_PRIME 10000
/* Events between two clock reads: a few milliseconds of work on this host. */
#define EVENTS_PER_CLOCK_READ 16

/* One event: count the primes up to MAX_PRIME by trial division (sysbench uses sqrt(c)). */
static uint64_t prime_event(void)
{
    uint64_t primes = 0;
    for (uint64_t c = 3; c < MAX_PRIME; c++) {
        uint64_t l = 2;
        while (l * l <= c && c % l != 0)
            l++;
        if (l * l > c)
            primes++;
    }
    return primes;
}

static int cpu(long seconds)
{
    uint64_t events = 0, check = 0;
    const uint64_t start = now_ns(), limit = (uint64_t)seconds * 1000000000u;
    uint64_t elapsed = 0;
    while (elapsed < limit) {
        for (int i = 0; i < EVENTS_PER_CLOCK_READ; i++)
            check += prime_event();
        events += EVENTS_PER_CLOCK_READ;
        elapsed = now_ns() - start;
    }
    struct line l = {.len = 0};
    put_str(&l, "bench: cpu");
    put_kv(&l, "events", events);
    put_kv(&l, "elapsed_ns", elapsed);
    put_kv(&l, "max_prime", MAX_PRIME);
    /* Every event finds the same 1228 primes: printing the sum keeps the work from being
     * optimized away and checks it. */
    put_kv(&l, "primes_per_event", events ? check / events : 0);
    put_line(&l, 1);
    return 0;
}

/* --- mem: bandwidth over a block-size sweep ------------------------------------------------- */
#define MEM_BUFFER (32u << 20) /* larger than any cache: each block access goes to RAM */
#define MEM_TOTAL (512u << 20) /* bytes moved per operation and block size */

enum mem_op { SEQ_READ, SEQ_WRITE, RND_READ, RND_WRITE };
static const char *const MEM_OPS[] = {"seq_read", "seq_write", "rnd_read", "rnd_write"};

/* The sink keeps the reads from being optimized away. */
static volatile uint64_t sink;

static uint64_t read_block(const uint64_t *block, size_t words)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < words; i++)
        sum += block[i];
    return sum;
}

static void write_block(uint64_t *block, size_t words, uint64_t value)
{
    for (size_t i = 0; i < words; i++)
        block[i] = value;
}

static void mem_measure(uint64_t *buffer, enum mem_op op, size_t block)
{
    const size_t words = block / 8, blocks = MEM_BUFFER / block, count = MEM_TOTAL / block;
    uint64_t random = 0x9e3779b97f4a7c15u, sum = 0;
    size_t next = 0;
    const uint64_t start = now_ns();
    for (size_t i = 0; i < count; i++) {
        size_t index = (op == RND_READ || op == RND_WRITE) ? next_random(&random) % blocks : next;
        next = next + 1 == blocks ? 0 : next + 1;
        uint64_t *at = buffer + index * words;
        if (op == SEQ_READ || op == RND_READ)
            sum += read_block(at, words);
        else
            write_block(at, words, i);
    }
    const uint64_t elapsed = now_ns() - start;
    sink += sum;
    struct line l = {.len = 0};
    put_str(&l, "bench: mem op=");
    put_str(&l, MEM_OPS[op]);
    put_kv(&l, "block", block);
    put_kv(&l, "bytes", (uint64_t)count * block);
    put_kv(&l, "elapsed_ns", elapsed);
    put_line(&l, 1);
}

static int mem(void)
{
    uint64_t *buffer = alloc(MEM_BUFFER);
    if (!buffer)
        return fail("cannot map the memory buffer", 0);
    /* Touch every page first: page faults are not memory bandwidth. */
    write_block(buffer, MEM_BUFFER / 8, 1);
    for (size_t block = 1024; block <= (1u << 20); block *= 4)
        for (int op = SEQ_READ; op <= RND_WRITE; op++)
            mem_measure(buffer, (enum mem_op)op, block);
    return 0;
}

/* --- fileio: sequential and random I/O with O_DIRECT ------------------------------------------ */
#define SEQ_BLOCK (1u << 20)
#define RND_BLOCK 4096u
#define RND_SECONDS 5
#define RND_MAX_OPS 20000u

static int fileio_seq(int fd, uint64_t size, int write, unsigned char *buffer)
{
    const uint64_t start = now_ns();
    for (uint64_t off = 0; off < size; off += SEQ_BLOCK) {
        long done = write ? sys_pwrite(fd, buffer, SEQ_BLOCK, (long)off) : sys_pread(fd, buffer, SEQ_BLOCK, (long)off);
        if (done != (long)SEQ_BLOCK)
            return fail(write ? "sequential write failed" : "sequential read failed", done);
    }
    if (write) {
        long synced = sys_fdatasync(fd);
        if (failed(synced))
            return fail("fdatasync failed", synced);
    }
    const uint64_t elapsed = now_ns() - start;
    struct line l = {.len = 0};
    put_str(&l, write ? "bench: fileio op=seq_write" : "bench: fileio op=seq_read");
    put_kv(&l, "block", SEQ_BLOCK);
    put_kv(&l, "bytes", size);
    put_kv(&l, "elapsed_ns", elapsed);
    put_line(&l, 1);
    return 0;
}

/* Shell sort: no library, and a few thousand latencies sort in a moment. */
static void sort(uint64_t *v, size_t n)
{
    for (size_t gap = n / 2; gap > 0; gap /= 2)
        for (size_t i = gap; i < n; i++)
            for (size_t j = i; j >= gap && v[j - gap] > v[j]; j -= gap) {
                uint64_t t = v[j];
                v[j] = v[j - gap];
                v[j - gap] = t;
            }
}

/* The p-th percentile (nearest rank) of sorted v[0..n). */
static uint64_t percentile(const uint64_t *v, size_t n, unsigned p)
{
    size_t rank = (n * p + 99) / 100;
    return n ? v[rank ? rank - 1 : 0] : 0;
}

static int fileio_random(int fd, uint64_t size, unsigned char *buffer)
{
    uint64_t *latency = alloc(RND_MAX_OPS * sizeof(uint64_t));
    if (!latency)
        return fail("cannot map the latency table", 0);
    const uint64_t blocks = size / RND_BLOCK, start = now_ns(), limit = RND_SECONDS * 1000000000ull;
    uint64_t random = 0x2545f4914f6cdd1du, before = start;
    size_t ops = 0;
    /* Every read is timed, so here the clock is read around each one. */
    while (ops < RND_MAX_OPS && before - start < limit) {
        long off = (long)(next_random(&random) % blocks * RND_BLOCK);
        long done = sys_pread(fd, buffer, RND_BLOCK, off);
        if (done != (long)RND_BLOCK)
            return fail("random read failed", done);
        uint64_t after = now_ns();
        latency[ops++] = after - before;
        before = after;
    }
    const uint64_t elapsed = before - start;
    sort(latency, ops);
    struct line l = {.len = 0};
    put_str(&l, "bench: fileio op=rnd_read");
    put_kv(&l, "block", RND_BLOCK);
    put_kv(&l, "ops", ops);
    put_kv(&l, "elapsed_ns", elapsed);
    put_kv(&l, "p50_ns", percentile(latency, ops, 50));
    put_kv(&l, "p95_ns", percentile(latency, ops, 95));
    put_kv(&l, "p99_ns", percentile(latency, ops, 99));
    put_line(&l, 1);
    return 0;
}

static int fileio(const char *path, long mib)
{
    long fd = sys_open3(path, O_RDWR | O_DIRECT, 0);
    if (failed(fd))
        return fail("cannot open the file or disk with O_RDWR|O_DIRECT", fd);
    long end = sys_lseek((int)fd, 0, SEEK_END);
    if (failed(end))
        return fail("cannot find the size", end);
    uint64_t size = (uint64_t)end;
    if (mib > 0 && (uint64_t)mib << 20 < size)
        size = (uint64_t)mib << 20;
    size -= size % SEQ_BLOCK;
    if (size < SEQ_BLOCK)
        return fail("the file or disk is smaller than 1 MiB", 0);
    /* O_DIRECT wants buffers aligned to the logical block size; a mapping is page aligned. */
    unsigned char *buffer = alloc(SEQ_BLOCK);
    if (!buffer)
        return fail("cannot map the I/O buffer", 0);
    for (size_t i = 0; i < SEQ_BLOCK; i++)
        buffer[i] = (unsigned char)(i * 131 + 7);
    int status = fileio_seq((int)fd, size, 1, buffer);
    if (!status)
        status = fileio_seq((int)fd, size, 0, buffer);
    if (!status)
        status = fileio_random((int)fd, size, buffer);
    sys_close((int)fd);
    return status;
}

static int usage(void)
{
    struct line l = {.len = 0};
    put_str(&l, "usage: workloads cpu SECONDS | workloads mem | workloads fileio PATH [MIB]");
    put_line(&l, 2);
    return 2;
}

static int same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

int main(int argc, char **argv)
{
    if (argc == 3 && same(argv[1], "cpu")) {
        long seconds = parse_dec(argv[2]);
        return seconds > 0 ? cpu(seconds) : usage();
    }
    if (argc == 2 && same(argv[1], "mem"))
        return mem();
    if ((argc == 3 || argc == 4) && same(argv[1], "fileio")) {
        long mib = argc == 4 ? parse_dec(argv[3]) : 0;
        return mib >= 0 ? fileio(argv[2], mib) : usage();
    }
    return usage();
}
