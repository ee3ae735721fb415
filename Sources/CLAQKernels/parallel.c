// laq's second thread: one persistent worker that takes the upper half of a split loop
// (laq_parallel_halves in laq_kernels.h).
//
// Handing work to a sleeping thread costs a futex wake-up, tens of microseconds on a virtual
// machine: libdispatch's concurrentPerform(2) took a batch-1 ternary product of 4096² from
// 0.127 ms (two spinning threads) to 0.19–0.21 ms (medians, measured side by side). So after each
// job the worker waits for the next one spinning (PAUSE) for 10 µs, then yielding the core to
// any other runnable thread (OpenBLAS's, the caller's) until 100 µs have passed, and only then
// sleeps on a condition variable.
//
// The caller never waits for a worker that has not started its half: if the worker has not
// taken the job within 200 µs of the caller finishing its own half (asleep and slow to wake, or
// without a core in an oversubscribed process), the caller takes it back and runs it itself, as
// libdispatch's callers run the iterations no thread has picked up.
#define _GNU_SOURCE
#include "laq_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define LAQ_PAUSE() _mm_pause()
#else
#define LAQ_PAUSE() ((void)0)
#endif

static struct {
    atomic_int busy;          // a caller holds the worker (one at a time)
    atomic_ulong posted;      // sequence number of the last job handed over
    atomic_ulong state;       // (sequence << 2) | OPEN, TAKEN (by the worker) or RETURNED (to the caller)
    atomic_ulong finished;    // sequence number of the last job the worker ran
    atomic_int sleeping;      // the worker waits on `wake`
    laq_range_fn fn;
    void *context;
    long begin, end;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started;              // 0: not yet, 1: running, −1: could not start (set by the holder of `busy`)
} worker = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

enum { OPEN = 1, TAKEN = 2, RETURNED = 3 };

// How long a caller that has finished its half lets an open job wait for the worker.
static const long long patience = 200000;

static long long nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

// Waits until a job after `seen` is posted: spinning for 10 µs (PAUSE is ~24 ns on Zen 4),
// then yielding the core until 100 µs have passed, then sleeping.
static unsigned long next_job(unsigned long seen) {
    const long long start = nanoseconds();
    long long waited = 0;
    for (long spin = 0;; spin++) {
        const unsigned long posted = atomic_load_explicit(&worker.posted, memory_order_acquire);
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
    pthread_mutex_lock(&worker.lock);
    atomic_store(&worker.sleeping, 1);
    unsigned long posted;
    while ((posted = atomic_load(&worker.posted)) == seen) pthread_cond_wait(&worker.wake, &worker.lock);
    atomic_store(&worker.sleeping, 0);
    pthread_mutex_unlock(&worker.lock);
    return posted;
}

static void *work(void *unused) {
    (void)unused;
    unsigned long seen = 0;
    for (;;) {
        seen = next_job(seen);
        // Only the job still open: the caller may have taken it back (or posted a later one).
        unsigned long open = seen << 2 | OPEN;
        if (!atomic_compare_exchange_strong(&worker.state, &open, seen << 2 | TAKEN)) continue;
        worker.fn(worker.context, worker.begin, worker.end);
        atomic_store_explicit(&worker.finished, seen, memory_order_release);
    }
    return NULL;
}

// A child of fork() has only the forking thread: it starts a worker of its own when it needs one.
static void forget_worker(void) {
    atomic_store(&worker.busy, 0);
    atomic_store(&worker.posted, 0);
    atomic_store(&worker.state, 0);
    atomic_store(&worker.finished, 0);
    atomic_store(&worker.sleeping, 0);
    pthread_mutex_init(&worker.lock, NULL);
    pthread_cond_init(&worker.wake, NULL);
    worker.started = 0;
}

// Called by the holder of `busy`, so never twice at once. Without the fork handler a child
// would believe a worker runs that it does not have, so failing to register it fails the start.
static void start(void) {
    static int registered;
    if (!registered) registered = pthread_atfork(NULL, NULL, forget_worker) == 0;
    if (!registered) {
        worker.started = -1;
        return;
    }
    pthread_attr_t attributes;
    pthread_t thread;
    if (pthread_attr_init(&attributes) != 0) {
        worker.started = -1;
        return;
    }
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    worker.started = pthread_create(&thread, &attributes, work, NULL) == 0 ? 1 : -1;
    pthread_attr_destroy(&attributes);
}

int laq_parallel_halves(laq_range_fn fn, void *context, long count, long split) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&worker.busy, &expected, 1)) return 0;
    if (worker.started == 0) start();
    if (worker.started != 1) {
        atomic_store(&worker.busy, 0);
        return 0;
    }
    worker.fn = fn;
    worker.context = context;
    worker.begin = split;
    worker.end = count;
    const unsigned long job = atomic_load(&worker.posted) + 1;
    atomic_store(&worker.state, job << 2 | OPEN);
    atomic_store(&worker.posted, job);  // sequentially consistent: see `sleeping` below
    if (atomic_load(&worker.sleeping)) {
        // The worker sets `sleeping` before it rereads `posted` under the lock, so either it
        // sees this job or it is (about to be) waiting and gets the signal.
        pthread_mutex_lock(&worker.lock);
        pthread_cond_signal(&worker.wake);
        pthread_mutex_unlock(&worker.lock);
    }
    fn(context, 0, split);
    // Waits for the worker's half as the worker waits for jobs: spinning for 10 µs, then
    // yielding (the worker may be waiting for a core); takes an untaken half back after `patience`.
    const long long own_done = nanoseconds();
    long long waited = 0;
    for (long spin = 0;; spin++) {
        if (atomic_load_explicit(&worker.finished, memory_order_acquire) == job) break;
        if ((spin & 15) == 0) {
            waited = nanoseconds() - own_done;
            unsigned long open = job << 2 | OPEN;
            if (waited > patience && atomic_load(&worker.state) == open
                && atomic_compare_exchange_strong(&worker.state, &open, job << 2 | RETURNED)) {
                fn(context, split, count);
                break;
            }
        }
        if (waited < 10000) LAQ_PAUSE();
        else sched_yield();
    }
    atomic_store(&worker.busy, 0);
    return 1;
}
