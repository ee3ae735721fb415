// Products with a narrow inner or outer shape, where OpenBLAS spends more time packing than
// multiplying (contracts in include/laq_kernels.h): a convolution on one input channel (K = kh·kw
// ≤ 16: C = A·B) and its kernel gradient (C = Aᵀ·B over a long K). The output's width n ≤ 64 is
// held in up to four 16-lane accumulators per row.
#include "laq_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"), always_inline)) static inline void
short_inner_avx512_v(const float *a, long lda, const float *b, long ldb, float *c, long ldc, long rows, long k, long n,
                     int accumulate, const long vectors) {
    const __mmask16 last = (n % 16) ? (__mmask16)((1u << (n % 16)) - 1) : 0xFFFF;
    // Four rows at a time: their 4·vectors accumulators are independent chains, where one row's
    // chain of k fused multiply-adds waits on each one's latency; each element's sum is the same
    // sequence of operations either way.
    long i = 0;
    for (; i + 4 <= rows; i += 4) {
        __m512 acc[4][4];
#pragma clang loop unroll(full)
        for (long r = 0; r < 4; r++)
#pragma clang loop unroll(full)
            for (long v = 0; v < vectors; v++) {
                const __mmask16 mask = v == vectors - 1 ? last : 0xFFFF;
                acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(mask, c + (i + r) * ldc + 16 * v) : _mm512_setzero_ps();
            }
        for (long t = 0; t < k; t++) {
            __m512 y[4];
#pragma clang loop unroll(full)
            for (long v = 0; v < vectors; v++) y[v] = _mm512_maskz_loadu_ps(v == vectors - 1 ? last : 0xFFFF, b + t * ldb + 16 * v);
#pragma clang loop unroll(full)
            for (long r = 0; r < 4; r++) {
                const __m512 x = _mm512_set1_ps(a[(i + r) * lda + t]);
#pragma clang loop unroll(full)
                for (long v = 0; v < vectors; v++) acc[r][v] = _mm512_fmadd_ps(x, y[v], acc[r][v]);
            }
        }
#pragma clang loop unroll(full)
        for (long r = 0; r < 4; r++)
#pragma clang loop unroll(full)
            for (long v = 0; v < vectors; v++)
                _mm512_mask_storeu_ps(c + (i + r) * ldc + 16 * v, v == vectors - 1 ? last : 0xFFFF, acc[r][v]);
    }
    for (; i < rows; i++) {
        __m512 acc[4];
#pragma clang loop unroll(full)
        for (long v = 0; v < vectors; v++) {
            const __mmask16 mask = v == vectors - 1 ? last : 0xFFFF;
            acc[v] = accumulate ? _mm512_maskz_loadu_ps(mask, c + i * ldc + 16 * v) : _mm512_setzero_ps();
        }
        for (long t = 0; t < k; t++) {
            const __m512 x = _mm512_set1_ps(a[i * lda + t]);
#pragma clang loop unroll(full)
            for (long v = 0; v < vectors; v++) {
                const __mmask16 mask = v == vectors - 1 ? last : 0xFFFF;
                acc[v] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(mask, b + t * ldb + 16 * v), acc[v]);
            }
        }
#pragma clang loop unroll(full)
        for (long v = 0; v < vectors; v++) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, v == vectors - 1 ? last : 0xFFFF, acc[v]);
    }
}

__attribute__((target("avx512f"))) static void short_inner_avx512(const float *a, long lda, const float *b, long ldb, float *c,
                                                                   long ldc, long rows, long k, long n, int accumulate) {
    switch ((n + 15) / 16) {
    case 1: short_inner_avx512_v(a, lda, b, ldb, c, ldc, rows, k, n, accumulate, 1); break;
    case 2: short_inner_avx512_v(a, lda, b, ldb, c, ldc, rows, k, n, accumulate, 2); break;
    case 3: short_inner_avx512_v(a, lda, b, ldb, c, ldc, rows, k, n, accumulate, 3); break;
    default: short_inner_avx512_v(a, lda, b, ldb, c, ldc, rows, k, n, accumulate, 4); break;
    }
}

__attribute__((target("avx512f"), always_inline)) static inline void
long_inner_avx512_v(const float *a, long lda, const float *b, long ldb, float *c, long m, long rows, long n, const long vectors) {
    // c (m × n) = Σ_r a[r, :]ᵀ · b[r, :], one 16-lane accumulator per (t, v): m·vectors ≤ 16·4.
    const __mmask16 last = (n % 16) ? (__mmask16)((1u << (n % 16)) - 1) : 0xFFFF;
    __m512 acc[16][4];
    for (long t = 0; t < m; t++)
#pragma clang loop unroll(full)
        for (long v = 0; v < vectors; v++) acc[t][v] = _mm512_setzero_ps();
    for (long r = 0; r < rows; r++) {
        __m512 y[4];
#pragma clang loop unroll(full)
        for (long v = 0; v < vectors; v++) y[v] = _mm512_maskz_loadu_ps(v == vectors - 1 ? last : 0xFFFF, b + r * ldb + 16 * v);
        for (long t = 0; t < m; t++) {
            const __m512 x = _mm512_set1_ps(a[r * lda + t]);
#pragma clang loop unroll(full)
            for (long v = 0; v < vectors; v++) acc[t][v] = _mm512_fmadd_ps(x, y[v], acc[t][v]);
        }
    }
    for (long t = 0; t < m; t++)
#pragma clang loop unroll(full)
        for (long v = 0; v < vectors; v++) _mm512_mask_storeu_ps(c + t * n + 16 * v, v == vectors - 1 ? last : 0xFFFF, acc[t][v]);
}

__attribute__((target("avx512f"))) static void long_inner_avx512(const float *a, long lda, const float *b, long ldb, float *c,
                                                                  long m, long rows, long n) {
    switch ((n + 15) / 16) {
    case 1: long_inner_avx512_v(a, lda, b, ldb, c, m, rows, n, 1); break;
    case 2: long_inner_avx512_v(a, lda, b, ldb, c, m, rows, n, 2); break;
    case 3: long_inner_avx512_v(a, lda, b, ldb, c, m, rows, n, 3); break;
    default: long_inner_avx512_v(a, lda, b, ldb, c, m, rows, n, 4); break;
    }
}
#endif

void laq_short_inner_product(const float *a, long lda, const float *b, long ldb, float *c, long ldc, long rows, long k,
                             long n, int accumulate, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        short_inner_avx512(a, lda, b, ldb, c, ldc, rows, k, n, accumulate);
        return;
    }
#endif
    (void)isa;
    for (long i = 0; i < rows; i++) {
        float *out = c + i * ldc;
        if (!accumulate) memset(out, 0, sizeof(float) * (size_t)n);
        for (long t = 0; t < k; t++) {
            const float x = a[i * lda + t];
            const float *row = b + t * ldb;
            for (long j = 0; j < n; j++) out[j] += x * row[j];
        }
    }
}

void laq_long_inner_product(const float *a, long lda, const float *b, long ldb, float *c, long m, long rows, long n,
                            int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512 && m <= 16) {
        long_inner_avx512(a, lda, b, ldb, c, m, rows, n);
        return;
    }
#endif
    (void)isa;
    memset(c, 0, sizeof(float) * (size_t)(m * n));
    for (long r = 0; r < rows; r++)
        for (long t = 0; t < m; t++) {
            const float x = a[r * lda + t];
            for (long j = 0; j < n; j++) c[t * n + j] += x * b[r * ldb + j];
        }
}
