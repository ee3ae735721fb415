// Shim for OpenBLAS' CBLAS interface (Debian libopenblas-dev). No stable API.
#include <cblas.h>
#include <stdlib.h>

// OpenBLAS extensions, declared in its cblas.h; re-exported here under laq's prefix
// so that callers do not depend on the header's spelling.
static inline void laq_blas_set_num_threads(int n) { openblas_set_num_threads(n); }
static inline int laq_blas_get_num_threads(void) { return openblas_get_num_threads(); }

// OpenBLAS' pthread build starts its worker threads when the library loads; idle workers spin
// (sched_yield) for about 2^28 cycles before they sleep, taking a core from work that uses no
// BLAS. blas_thread_shutdown_ stops them (it is what OpenBLAS runs before fork); the next
// threaded call starts them again. Weak: absent from other builds (OpenMP), where this is a no-op.
extern int blas_thread_shutdown_(void) __attribute__((weak));
static inline int laq_blas_stop_idle_threads(void) {
    return blas_thread_shutdown_ ? blas_thread_shutdown_() : -1;
}

// Idle workers spin 2^OPENBLAS_THREAD_TIMEOUT cycles (default 2^28, ~0.1 s) before they sleep,
// and meanwhile take the second core from laq's own threaded kernels (BLASThreads.sleepWhenIdle
// has the measurements). The variable is read when the library loads;
// openblas_read_env reads it again, and workers started after that use it. Unless the user set
// it, this sets 4 (OpenBLAS' minimum), rereads it and stops the current workers. Weak, as above.
extern void openblas_read_env(void) __attribute__((weak));
static inline int laq_blas_sleep_when_idle(void) {
    if (!openblas_read_env || !blas_thread_shutdown_) return -1;
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    openblas_read_env();
    return blas_thread_shutdown_();
}
