// Float32 products with a weight matrix packed once into panels of 32 columns (a convolution's
// kernel, at load): C = A·W (+ C). Each element of C is one chain of fused multiply-adds over
// k in order from 0, held in a register, then C's old value added when accumulating: the same
// bits for any split of the rows and panels between threads. A 12-row by 32-column tile keeps
// 24 accumulators in registers; A is read in place (each value broadcast), W's panel streams.
#include "laq_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { PANEL = 32, TILE_ROWS = 12 };

long laq_panels_length(long k, long n) { return (n + PANEL - 1) / PANEL * PANEL * k; }

void laq_panels_pack(const float *w, long k, long n, float *panels) {
    const long count = (n + PANEL - 1) / PANEL;
    for (long p = 0; p < count; p++)
        for (long t = 0; t < k; t++) {
            float *row = panels + (p * k + t) * PANEL;
            const long first = p * PANEL, width = n - first < PANEL ? n - first : PANEL;
            memcpy(row, w + t * n + first, sizeof(float) * (size_t)width);
            for (long j = width; j < PANEL; j++) row[j] = 0;
        }
}

#if defined(__x86_64__)
__attribute__((target("avx512f"), always_inline)) static inline void
tile(const float *a, long lda, const float *panel, long k, float *c, long ldc, __mmask16 m0, __mmask16 m1, int accumulate, const long rows) {
    __m512 acc[TILE_ROWS][2];
#pragma clang loop unroll(full)
    for (long r = 0; r < TILE_ROWS; r++) {
        acc[r][0] = _mm512_setzero_ps();
        acc[r][1] = _mm512_setzero_ps();
    }
    for (long t = 0; t < k; t++) {
        const __m512 w0 = _mm512_loadu_ps(panel + t * PANEL), w1 = _mm512_loadu_ps(panel + t * PANEL + 16);
#pragma clang loop unroll(full)
        for (long r = 0; r < TILE_ROWS; r++) {
            if (r >= rows) break;
            const __m512 x = _mm512_set1_ps(a[r * lda + t]);
            acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
        }
    }
#pragma clang loop unroll(full)
    for (long r = 0; r < TILE_ROWS; r++) {
        if (r >= rows) break;
        float *out = c + r * ldc;
        if (accumulate) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, out));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, out + 16));
        }
        _mm512_mask_storeu_ps(out, m0, acc[r][0]);
        _mm512_mask_storeu_ps(out + 16, m1, acc[r][1]);
    }
}

__attribute__((target("avx512f"))) static void panel_avx512(const float *a, long lda, const float *w, long k, long width,
                                                           float *c, long ldc, long row_begin, long row_end, int accumulate) {
    const __mmask16 m0 = width >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << width) - 1);
    const __mmask16 m1 = width >= 32 ? (__mmask16)0xFFFF : width > 16 ? (__mmask16)((1u << (width - 16)) - 1) : (__mmask16)0;
    long i = row_begin;
    for (; i + TILE_ROWS <= row_end; i += TILE_ROWS) tile(a + i * lda, lda, w, k, c + i * ldc, ldc, m0, m1, accumulate, TILE_ROWS);
    switch (row_end - i) {
#define LAQ_TAIL(rows) \
    case rows: tile(a + i * lda, lda, w, k, c + i * ldc, ldc, m0, m1, accumulate, rows); break;
        LAQ_TAIL(1) LAQ_TAIL(2) LAQ_TAIL(3) LAQ_TAIL(4) LAQ_TAIL(5) LAQ_TAIL(6)
        LAQ_TAIL(7) LAQ_TAIL(8) LAQ_TAIL(9) LAQ_TAIL(10) LAQ_TAIL(11)
#undef LAQ_TAIL
    default: break;
    }
}
#endif

void laq_panel_multiply(const float *a, long lda, const float *w, long k, long width, float *c, long ldc, long row_begin,
                        long row_end, int accumulate, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        panel_avx512(a, lda, w, k, width, c, ldc, row_begin, row_end, accumulate);
        return;
    }
#endif
    (void)isa;
    // The same chains in scalar code: Σ_t a·w by fmaf in t order, then + C.
    for (long i = row_begin; i < row_end; i++)
        for (long j = 0; j < width; j++) {
            float sum = 0;
            for (long t = 0; t < k; t++) sum = __builtin_fmaf(a[i * lda + t], w[t * PANEL + j], sum);
            float *out = c + i * ldc + j;
            *out = accumulate ? sum + *out : sum;
        }
}

void laq_panels_multiply(const float *a, long lda, const float *panels, long k, long n, float *c, long ldc, long row_begin,
                         long row_end, long panel, int accumulate, int isa) {
    const long first = panel * PANEL, width = n - first < PANEL ? n - first : PANEL;
    laq_panel_multiply(a, lda, panels + panel * k * PANEL, k, width, c + first, ldc, row_begin, row_end, accumulate, isa);
}
