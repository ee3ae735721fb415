// The AVX-512 mask of the first lanes of a 16-float vector that `left` values still fill: all
// 16 when left ≥ 16, none when left ≤ 0 (for the last, partial vector of a row).
#ifndef LAQ_LANES_H
#define LAQ_LANES_H

#if defined(__x86_64__)
#include <immintrin.h>

static inline __mmask16 laq_lanes(long left) {
    return left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : (__mmask16)0;
}

// The AVX2 mask of the first lanes of an 8-float vector that `left` values fill (as laq_lanes):
// lane i all ones where i < left.
__attribute__((target("avx2"))) static inline __m256i laq_lanes8(long left) {
    const int count = left >= 8 ? 8 : left > 0 ? (int)left : 0;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

#endif
