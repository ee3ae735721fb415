// Per-channel affine maps over rows of channels (an inference BatchNormalization, alone or with
// the ReLU that follows it: spec of laq_scale_shift in include/laq_kernels.h). Each value is a
// product, then a sum (two roundings: never contracted into a fused multiply-add), then the ReLU
// by comparisons and selections in the order the scalar definition uses, so every instruction
// set gives the scalar definition's bits, NaN and signed zeros included.
#include "laq_kernels.h"
#include "lanes.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma clang fp contract(off)

__attribute__((always_inline)) static inline float relu_scalar(float v, int relu, float threshold, float slope, float ceiling) {
    if (relu == LAQ_RELU_MAX0) return 0.0f >= v ? 0.0f : v;
    if (relu == LAQ_RELU_KERAS) {
        const float y = v >= threshold ? v : slope * (v - threshold);
        return y > ceiling ? ceiling : y;
    }
    return v;
}

static void scale_shift_scalar(const float *x, float *y, long rows, long channels, const float *scale, const float *shift, int relu,
                               float threshold, float slope, float ceiling, long from) {
    for (long r = 0; r < rows; r++)
        for (long c = from; c < channels; c++)
            y[r * channels + c] = relu_scalar(x[r * channels + c] * scale[c] + shift[c], relu, threshold, slope, ceiling);
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static long scale_shift_avx512(const float *x, float *y, long rows, long channels, const float *scale,
                                                                 const float *shift, int relu, float threshold, float slope, float ceiling) {
    const long blocks = channels / 16 * 16;
    const __m512 zero = _mm512_setzero_ps(), t = _mm512_set1_ps(threshold), s = _mm512_set1_ps(slope), top = _mm512_set1_ps(ceiling);
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * channels;
        float *out = y + r * channels;
        for (long c = 0; c < blocks; c += 16) {
            __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(in + c), _mm512_loadu_ps(scale + c)), _mm512_loadu_ps(shift + c));
            if (relu == LAQ_RELU_MAX0) {
                // 0 ≥ v ? 0 : v (false for NaN: NaN stays)
                v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(zero, v, _CMP_GE_OQ), v, zero);
            } else if (relu == LAQ_RELU_KERAS) {
                const __m512 below = _mm512_mul_ps(s, _mm512_sub_ps(v, t));
                v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, t, _CMP_GE_OQ), below, v);
                v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, top, _CMP_GT_OQ), v, top);
            }
            _mm512_storeu_ps(out + c, v);
        }
    }
    return blocks;
}

__attribute__((target("avx2"))) static long scale_shift_avx2(const float *x, float *y, long rows, long channels, const float *scale,
                                                            const float *shift, int relu, float threshold, float slope, float ceiling) {
    const long blocks = channels / 8 * 8;
    const __m256 zero = _mm256_setzero_ps(), t = _mm256_set1_ps(threshold), s = _mm256_set1_ps(slope), top = _mm256_set1_ps(ceiling);
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * channels;
        float *out = y + r * channels;
        for (long c = 0; c < blocks; c += 8) {
            __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(in + c), _mm256_loadu_ps(scale + c)), _mm256_loadu_ps(shift + c));
            if (relu == LAQ_RELU_MAX0) {
                v = _mm256_blendv_ps(v, zero, _mm256_cmp_ps(zero, v, _CMP_GE_OQ));
            } else if (relu == LAQ_RELU_KERAS) {
                const __m256 below = _mm256_mul_ps(s, _mm256_sub_ps(v, t));
                v = _mm256_blendv_ps(below, v, _mm256_cmp_ps(v, t, _CMP_GE_OQ));
                v = _mm256_blendv_ps(v, top, _mm256_cmp_ps(v, top, _CMP_GT_OQ));
            }
            _mm256_storeu_ps(out + c, v);
        }
    }
    return blocks;
}
#endif

void laq_scale_shift(const float *x, float *y, long rows, long channels, const float *scale, const float *shift, int relu,
                     float threshold, float slope, float ceiling, int isa) {
    long done = 0;
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) done = scale_shift_avx512(x, y, rows, channels, scale, shift, relu, threshold, slope, ceiling);
    else if (isa >= LAQ_ISA_AVX2) done = scale_shift_avx2(x, y, rows, channels, scale, shift, relu, threshold, slope, ceiling);
#endif
    // The channels past the last whole vector, in every row.
    if (done < channels) scale_shift_scalar(x, y, rows, channels, scale, shift, relu, threshold, slope, ceiling, done);
}

// Column sums: each column's values added in row order from 0, as the scalar loop does; up to
// four vectors of columns are summed in registers across the rows.
static void column_sums_scalar(const float *a, long rows, long width, long first, long end, float *sums) {
    for (long j = first; j < end; j++) sums[j] = 0;
    for (long r = 0; r < rows; r++)
        for (long j = first; j < end; j++) sums[j] += a[r * width + j];
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void column_sums_avx512(const float *a, long rows, long width, long first, long end, float *sums) {
    for (long j0 = first; j0 < end; j0 += 64) {
        __mmask16 masks[4];
        __m512 acc[4];
#pragma clang loop unroll(full)
        for (long v = 0; v < 4; v++) {
            const long left = end - j0 - 16 * v;
            masks[v] = laq_lanes(left);
            acc[v] = _mm512_setzero_ps();
        }
        for (long r = 0; r < rows; r++) {
            const float *row = a + r * width + j0;
#pragma clang loop unroll(full)
            for (long v = 0; v < 4; v++) acc[v] = _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(masks[v], row + 16 * v));
        }
#pragma clang loop unroll(full)
        for (long v = 0; v < 4; v++) _mm512_mask_storeu_ps(sums + j0 + 16 * v, masks[v], acc[v]);
    }
}

__attribute__((target("avx2"))) static void column_sums_avx2(const float *a, long rows, long width, long first, long end, float *sums) {
    const long whole = first + (end - first) / 32 * 32;
    for (long j0 = first; j0 < whole; j0 += 32) {
        __m256 acc[4];
#pragma clang loop unroll(full)
        for (long v = 0; v < 4; v++) acc[v] = _mm256_setzero_ps();
        for (long r = 0; r < rows; r++) {
            const float *row = a + r * width + j0;
#pragma clang loop unroll(full)
            for (long v = 0; v < 4; v++) acc[v] = _mm256_add_ps(acc[v], _mm256_loadu_ps(row + 8 * v));
        }
#pragma clang loop unroll(full)
        for (long v = 0; v < 4; v++) _mm256_storeu_ps(sums + j0 + 8 * v, acc[v]);
    }
    if (whole < end) column_sums_scalar(a, rows, width, whole, end, sums);
}
#endif

void laq_column_sums(const float *a, long rows, long width, long first, long end, float *sums, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) { column_sums_avx512(a, rows, width, first, end, sums); return; }
    if (isa >= LAQ_ISA_AVX2) { column_sums_avx2(a, rows, width, first, end, sums); return; }
#endif
    (void)isa;
    column_sums_scalar(a, rows, width, first, end, sums);
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static long relu_gradient_avx512(const float *g, const float *z, float *out, long count) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        const __mmask16 positive = _mm512_cmp_ps_mask(_mm512_loadu_ps(z + i), zero, _CMP_GT_OQ);
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_loadu_ps(g + i), _mm512_mask_blend_ps(positive, zero, one)));
    }
    return i;
}

__attribute__((target("avx2"))) static long relu_gradient_avx2(const float *g, const float *z, float *out, long count) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256 positive = _mm256_cmp_ps(_mm256_loadu_ps(z + i), zero, _CMP_GT_OQ);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), _mm256_blendv_ps(zero, one, positive)));
    }
    return i;
}
#endif

// ReLU's backward pass: g · (z > 0 ? 1 : 0), the product as the scalar definition takes it (a
// NaN or infinite gradient where z ≤ 0 gives NaN, as 0 · ∞ does).
void laq_relu_gradient(const float *g, const float *z, float *out, long count, int isa) {
    long i = 0;
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        i = relu_gradient_avx512(g, z, out, count);
    } else if (isa >= LAQ_ISA_AVX2) {
        i = relu_gradient_avx2(g, z, out, count);
    }
#endif
    (void)isa;
    for (; i < count; i++) out[i] = g[i] * (z[i] > 0 ? 1.0f : 0.0f);
}
