// Shim for OpenBLAS' CBLAS interface (Debian libopenblas-dev). No stable API.
#include <cblas.h>

// OpenBLAS extensions, declared in its cblas.h; re-exported here under laq's prefix
// so that callers do not depend on the header's spelling.
static inline void laq_blas_set_num_threads(int n) { openblas_set_num_threads(n); }
static inline int laq_blas_get_num_threads(void) { return openblas_get_num_threads(); }
