// Allocator settings for the engine (see EngineMemory in LAQEngine).
#include "laq_kernels.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int laq_keep_freed_blocks(long largest) {
#if defined(__GLIBC__)
    const int threshold = largest > 0x7fffffff ? 0x7fffffff : (int)largest;
    return mallopt(M_MMAP_THRESHOLD, threshold) && mallopt(M_TRIM_THRESHOLD, threshold > 0x1fffffff ? 0x7fffffff : 4 * threshold)
        && mallopt(M_TOP_PAD, threshold / 2);
#else
    (void)largest;
    return 0;
#endif
}
