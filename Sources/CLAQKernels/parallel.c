// laq's worker pool (laq_parallel_for in laq_kernels.h): up to threads − 1 persistent workers
// and the calling thread share a loop split into contiguous parts.
//
// A job is a generation number and a claim counter in one 64-bit word, (generation << 32) | next
// part. Every thread, the caller included, claims the next part with a compare-and-swap that
// also checks the generation, so a worker that wakes late can neither run a part of a finished
// job nor one of a job posted since; the caller claims whatever no worker has taken, so it never
// waits for a worker that has not started, only for parts already running. The parts are fixed
// by the caller (not by which thread runs them), so a loop whose parts are independent gives
// the same bits on any number of threads.
//
// Tapered parts (laq_parallel_for_tapered) shrink linearly, part i of P weighing P − i: the
// threads' first parts are the largest and the last ones small, so that a thread slowed by
// another process (a shared machine's other tenants) costs the loop at most a small part's
// time, where equal parts wait for the slowed thread's whole half.
//
// Handing work to a sleeping thread costs a futex wake-up, tens of microseconds on a virtual
// machine, against a batch-1 product of a fraction of a millisecond. So after each job a worker
// waits for the next one spinning (PAUSE) for 10 µs, then yielding its core to any other
// runnable thread (OpenBLAS's, the caller's) until 100 µs have passed, and only then sleeps on
// a condition variable.
#define _GNU_SOURCE
#include "laq_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define LAQ_PAUSE() _mm_pause()
#else
#define LAQ_PAUSE() ((void)0)
#endif

// More threads than this are not started (a 256-core machine's loops are split 256 ways).
enum { MAX_THREADS = 256 };

static struct {
    atomic_int busy;           // a caller holds the pool (one at a time)
    atomic_ulong posted;       // generation of the last job posted (32 bits, never 0)
    atomic_ullong claim;       // (generation << 32) | index of the next unclaimed part
    atomic_long done;          // parts of the current job that have finished
    atomic_int sleeping;       // workers waiting on `wake`
    atomic_int allowed;        // threads a job may use, the caller included (0: not set yet)
    laq_range_fn fn;
    void *context;
    long count;
    int tapered;               // parts shrink (laq_parallel_for_tapered)
    atomic_long parts;         // read before a claim, by workers that may be late
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started;               // workers started (changed by the holder of `busy` only)
    int failed;                // a worker could not start: no more are tried
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

// Set while this thread runs a part of a job: a loop inside a part runs on this thread alone
// (the pool is held), and laq_pool_threads says 1 there, so that such a loop chooses its order
// as a single thread would (a batch's chunks side by side: ``Executor``).
static _Thread_local int in_part;

static long long nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

// Where part `index` of `parts` starts in [0, count): i·count/P, or tapered, count·S(i)/S(P) with
// S(i) = Σ_{j<i} (P − j) = i·P − i(i − 1)/2.
static long part_start(long count, long parts, long index, int tapered) {
    if (!tapered) return (long)((__int128)count * index / parts);
    const __int128 done = (__int128)index * parts - (__int128)index * (index - 1) / 2, all = (__int128)parts * (parts + 1) / 2;
    return (long)(count * done / all);
}

// Claims and runs parts of job `generation` until none is left or the job is no longer current.
static void run_parts(unsigned long generation) {
    for (;;) {
        unsigned long long claim = atomic_load_explicit(&pool.claim, memory_order_acquire);
        if ((claim >> 32) != generation) return;
        const long index = (long)(claim & 0xffffffffu);
        // `parts` may belong to a later job here; then the exchange below fails.
        if (index >= atomic_load_explicit(&pool.parts, memory_order_relaxed)) return;
        if (!atomic_compare_exchange_weak_explicit(&pool.claim, &claim, claim + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        // The part is claimed: the job cannot finish (nor a later one be posted) before it is
        // done, so its fields are the ones the caller wrote before posting it.
        const long count = pool.count, parts = atomic_load_explicit(&pool.parts, memory_order_relaxed);
        in_part = 1;
        pool.fn(pool.context, part_start(count, parts, index, pool.tapered), part_start(count, parts, index + 1, pool.tapered));
        in_part = 0;
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    }
}

// Waits until a job after `seen` is posted: spinning for 10 µs (PAUSE is ~24 ns on Zen 4),
// then yielding the core until 100 µs have passed, then sleeping.
static unsigned long next_job(unsigned long seen) {
    const long long start = nanoseconds();
    long long waited = 0;
    for (long spin = 0;; spin++) {
        const unsigned long posted = atomic_load_explicit(&pool.posted, memory_order_acquire);
        if (posted != seen) return posted;
        if ((spin & 15) == 0) waited = nanoseconds() - start;
        if (waited < 10000) {
            LAQ_PAUSE();
        } else if (waited < 100000) {
            sched_yield();
        } else {
            break;
        }
    }
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.sleeping, 1);
    unsigned long posted;
    while ((posted = atomic_load(&pool.posted)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
    atomic_fetch_sub(&pool.sleeping, 1);
    pthread_mutex_unlock(&pool.lock);
    return posted;
}

// Worker `number` (1, 2, …; the caller is thread 0) takes part in a job only while the pool
// allows more than `number` threads.
static void *work(void *argument) {
    const int number = (int)(intptr_t)argument;
    unsigned long seen = 0;
    for (;;) {
        seen = next_job(seen);
        if (number < atomic_load_explicit(&pool.allowed, memory_order_relaxed)) run_parts(seen);
    }
    return NULL;
}

// A child of fork() has only the forking thread: it starts workers of its own when it needs them.
static void forget_workers(void) {
    atomic_store(&pool.busy, 0);
    atomic_store(&pool.posted, 0);
    atomic_store(&pool.claim, 0);
    atomic_store(&pool.done, 0);
    atomic_store(&pool.sleeping, 0);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pool.started = 0;
    pool.failed = 0;
}

// Starts workers until `wanted` run (called by the holder of `busy`, so never twice at once).
// Without the fork handler a child would believe workers run that it does not have, so failing
// to register it starts none.
static void start_workers(int wanted) {
    static int registered;
    if (!registered) registered = pthread_atfork(NULL, NULL, forget_workers) == 0;
    if (!registered) {
        pool.failed = 1;
        return;
    }
    while (pool.started < wanted && !pool.failed) {
        pthread_attr_t attributes;
        pthread_t thread;
        if (pthread_attr_init(&attributes) != 0) {
            pool.failed = 1;
            return;
        }
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attributes, work, (void *)(intptr_t)(pool.started + 1)) == 0) {
            pool.started += 1;
        } else {
            pool.failed = 1;
        }
        pthread_attr_destroy(&attributes);
    }
}

void laq_pool_set_threads(int threads) {
    atomic_store(&pool.allowed, threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads);
}

int laq_pool_threads(void) { return in_part ? 1 : atomic_load(&pool.allowed); }

int laq_affinity_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}

static int parallel_for(laq_range_fn fn, void *context, long count, long parts, int tapered) {
    if (parts < 2 || count < 2 || in_part) return 0;
    if (parts > count) parts = count;
    if (parts > 0xffffffffL) return 0;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pool.busy, &expected, 1)) return 0;
    const int allowed = atomic_load(&pool.allowed) < 1 ? 1 : atomic_load(&pool.allowed);
    const long helpers = parts - 1 < allowed - 1 ? parts - 1 : allowed - 1;
    if (pool.started < helpers) start_workers((int)helpers);
    if (pool.started == 0) {
        atomic_store(&pool.busy, 0);
        return 0;
    }
    pool.fn = fn;
    pool.context = context;
    pool.count = count;
    pool.tapered = tapered;
    atomic_store_explicit(&pool.parts, parts, memory_order_relaxed);
    atomic_store(&pool.done, 0);
    unsigned long generation = (atomic_load(&pool.posted) + 1) & 0xffffffffu;
    if (generation == 0) generation = 1;
    atomic_store(&pool.claim, (unsigned long long)generation << 32);
    atomic_store(&pool.posted, generation);  // sequentially consistent: see `sleeping` below
    if (atomic_load(&pool.sleeping) > 0) {
        // A worker counts itself in `sleeping` before it rereads `posted` under the lock, so
        // either it sees this job or it is (about to be) waiting and gets the broadcast.
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    run_parts(generation);
    // Every part is claimed; wait for those still running on workers, spinning for 10 µs and
    // then yielding (a worker may be waiting for a core).
    const long long start = nanoseconds();
    long long waited = 0;
    for (long spin = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < parts; spin++) {
        if ((spin & 15) == 0) waited = nanoseconds() - start;
        if (waited < 10000) LAQ_PAUSE();
        else sched_yield();
    }
    atomic_store(&pool.busy, 0);
    return 1;
}

int laq_parallel_for(laq_range_fn fn, void *context, long count, long parts) { return parallel_for(fn, context, count, parts, 0); }

int laq_parallel_for_tapered(laq_range_fn fn, void *context, long count, long parts) {
    return parallel_for(fn, context, count, parts, 1);
}
