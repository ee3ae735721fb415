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
// 16 columns from j (the lanes of `mask`) through the epilogue.
__attribute__((target("avx512f"), always_inline)) static inline __m512 epilogue_avx512(__m512 v, const laq_epilogue *e, long j,
                                                                                         __mmask16 mask) {
    if (e->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, e->bias + j));
    if (e->scale) {
        v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, e->scale + j)), _mm512_maskz_loadu_ps(mask, e->shift + j));
        if (e->relu == LAQ_RELU_MAX0) {
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(_mm512_setzero_ps(), v, _CMP_GE_OQ), v, _mm512_setzero_ps());
        } else if (e->relu == LAQ_RELU_KERAS) {
            const __m512 t = _mm512_set1_ps(e->threshold), top = _mm512_set1_ps(e->ceiling);
            const __m512 below = _mm512_mul_ps(_mm512_set1_ps(e->slope), _mm512_sub_ps(v, t));
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, t, _CMP_GE_OQ), below, v);
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, top, _CMP_GT_OQ), v, top);
        }
    }
    return v;
}
#endif

#endif
