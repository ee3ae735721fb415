// The AVX-512 mask of the first lanes of a 16-float vector that `left` values still fill: all
// 16 when left ≥ 16, none when left ≤ 0 (for the last, partial vector of a row).
#ifndef LAQ_LANES_H
#define LAQ_LANES_H

#if defined(__x86_64__)
#include <immintrin.h>

static inline __mmask16 laq_lanes(long left) {
    return left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : (__mmask16)0;
}
#endif

#endif
