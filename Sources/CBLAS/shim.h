// Shim for OpenBLAS' CBLAS interface (Debian libopenblas-dev). No stable API.
#include <cblas.h>

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
