// The epilogue of laq_epilogue (include/laq_kernels.h) for the kernels that store a product:
// + bias, then v·scale + shift (a product, then a sum: never contracted into a fused
// multiply-add, which clang would otherwise do in optimised builds) and the ReLU, as
// laq_scale_shift computes them. The pragma holds for the rest of the including file too.
#ifndef LAQ_EPILOGUE_H
#define LAQ_EPILOGUE_H

#pragma clang fp contract(off)

#include "laq_kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The affine map and ReLU of one value of column j (after its bias).
static inline float epilogue_normalize_scalar(float v, const laq_epilogue *e, long j) {
    if (!e->scale) return v;
    v = v * e->scale[j] + e->shift[j];
    if (e->relu == LAQ_RELU_MAX0) return 0.0f >= v ? 0.0f : v;
    if (e->relu == LAQ_RELU_KERAS) {
        const float y = v >= e->threshold ? v : e->slope * (v - e->threshold);
        return y > e->ceiling ? e->ceiling : y;
    }
    return v;
}

// v (one element of a chain's result, column j) through the epilogue.
static inline float epilogue_scalar(float v, const laq_epilogue *e, long j) {
    if (e->bias) v = v + e->bias[j];
    return epilogue_normalize_scalar(v, e, j);
}

#if defined(__x86_64__)
// The epilogue's values for 16 columns from j (the lanes of a mask), loaded once for all the
// vectors of those columns a tile stores (the stores between them could otherwise alias the
// epilogue's arrays, and the compiler would load them again for every vector).
typedef struct {
    __m512 bias, scale, shift, threshold, slope, ceiling;
    int has_bias, has_scale, relu, shifted;
} epilogue_columns;

__attribute__((target("avx512f"), always_inline)) static inline epilogue_columns epilogue_columns_avx512(const laq_epilogue *e, long j,
                                                                                                          __mmask16 mask) {
    epilogue_columns c;
    c.has_bias = e->bias != 0;
    c.has_scale = e->scale != 0;
    c.relu = e->relu;
    c.bias = c.has_bias ? _mm512_maskz_loadu_ps(mask, e->bias + j) : _mm512_setzero_ps();
    c.scale = c.has_scale ? _mm512_maskz_loadu_ps(mask, e->scale + j) : _mm512_setzero_ps();
    c.shift = c.has_scale ? _mm512_maskz_loadu_ps(mask, e->shift + j) : _mm512_setzero_ps();
    c.threshold = _mm512_set1_ps(e->threshold);
    c.slope = _mm512_set1_ps(e->slope);
    c.ceiling = _mm512_set1_ps(e->ceiling);
    // slope·(v − threshold) is taken where v < threshold or v is NaN; with a threshold of ±0,
    // v − threshold is then v itself (a negative v, −∞ or NaN), so the subtraction is skipped.
    c.shifted = e->threshold != 0;
    return c;
}

// v (16 columns' results) through the epilogue whose values `c` holds.
__attribute__((target("avx512f"), always_inline)) static inline __m512 epilogue_apply_avx512(__m512 v, const epilogue_columns *c) {
    if (c->has_bias) v = _mm512_add_ps(v, c->bias);
    if (c->has_scale) {
        v = _mm512_add_ps(_mm512_mul_ps(v, c->scale), c->shift);
        if (c->relu == LAQ_RELU_MAX0) {
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(_mm512_setzero_ps(), v, _CMP_GE_OQ), v, _mm512_setzero_ps());
        } else if (c->relu == LAQ_RELU_KERAS) {
            const __m512 below = _mm512_mul_ps(c->slope, c->shifted ? _mm512_sub_ps(v, c->threshold) : v);
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, c->threshold, _CMP_GE_OQ), below, v);
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, c->ceiling, _CMP_GT_OQ), v, c->ceiling);
        }
    }
    return v;
}

// 16 columns from j (the lanes of `mask`) through the epilogue.
__attribute__((target("avx512f"), always_inline)) static inline __m512 epilogue_avx512(__m512 v, const laq_epilogue *e, long j,
                                                                                         __mmask16 mask) {
    const epilogue_columns c = epilogue_columns_avx512(e, j, mask);
    return epilogue_apply_avx512(v, &c);
}
#endif

#endif
