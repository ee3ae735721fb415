// The epilogue of laq_epilogue (include/laq_kernels.h) for the kernels that store a product:
// + bias, then v·scale + shift (a product, then a sum: never contracted into a fused
// multiply-add, which clang would otherwise do in optimised builds) and the ReLU, as
// laq_scale_shift computes them; then a residual Add and its ReLU. The pragma holds for the
// rest of the including file too.
#ifndef LAQ_EPILOGUE_H
#define LAQ_EPILOGUE_H

#pragma clang fp contract(off)

#include "laq_kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// A ReLU (LAQ_RELU_*) of v, by the comparisons its definition states.
static inline float epilogue_relu_scalar(float v, int relu, float threshold, float slope, float ceiling) {
    if (relu == LAQ_RELU_MAX0) return 0.0f >= v ? 0.0f : v;
    if (relu == LAQ_RELU_KERAS) {
        const float y = v >= threshold ? v : slope * (v - threshold);
        return y > ceiling ? ceiling : y;
    }
    return v;
}

// The affine map and ReLU of one value of column j (after its bias).
static inline float epilogue_normalize_scalar(float v, const laq_epilogue *e, long j) {
    if (!e->scale) return v;
    return epilogue_relu_scalar(v * e->scale[j] + e->shift[j], e->relu, e->threshold, e->slope, e->ceiling);
}

// The residual Add of v and r (the residual's value at v's place) and the ReLU after it.
static inline float epilogue_residual_scalar(float v, const laq_epilogue *e, float r) {
    return epilogue_relu_scalar(e->residual_first ? r + v : v + r, e->after_relu, e->after_threshold, e->after_slope, e->after_ceiling);
}

// v (one element of a chain's result, column j) through the epilogue.
static inline float epilogue_scalar(float v, const laq_epilogue *e, long j) {
    if (e->bias) v = v + e->bias[j];
    return epilogue_normalize_scalar(v, e, j);
}

#if defined(__x86_64__)
// A ReLU's parameters as vectors.
typedef struct {
    __m512 threshold, slope, ceiling;
    int mode, shifted;
} epilogue_relu;

// The epilogue's values for 16 columns from j (the lanes of a mask), loaded once for all the
// vectors of those columns a tile stores (the stores between them could otherwise alias the
// epilogue's arrays, and the compiler would load them again for every vector).
typedef struct {
    __m512 bias, scale, shift;
    int has_bias, has_scale;
    epilogue_relu relu, after;
} epilogue_columns;

__attribute__((target("avx512f"), always_inline)) static inline epilogue_relu epilogue_relu_avx512(int mode, float threshold, float slope,
                                                                                                  float ceiling) {
    epilogue_relu r;
    r.mode = mode;
    r.threshold = _mm512_set1_ps(threshold);
    r.slope = _mm512_set1_ps(slope);
    r.ceiling = _mm512_set1_ps(ceiling);
    // slope·(v − threshold) is taken where v < threshold or v is NaN; with a threshold of ±0,
    // v − threshold is then v itself (a negative v, −∞ or NaN), so the subtraction is skipped.
    r.shifted = threshold != 0;
    return r;
}

// The ReLU `r` of v, lane by lane as epilogue_relu_scalar.
__attribute__((target("avx512f"), always_inline)) static inline __m512 epilogue_apply_relu(__m512 v, const epilogue_relu *r) {
    if (r->mode == LAQ_RELU_MAX0) return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(_mm512_setzero_ps(), v, _CMP_GE_OQ), v, _mm512_setzero_ps());
    if (r->mode == LAQ_RELU_KERAS) {
        const __m512 below = _mm512_mul_ps(r->slope, r->shifted ? _mm512_sub_ps(v, r->threshold) : v);
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, r->threshold, _CMP_GE_OQ), below, v);
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, r->ceiling, _CMP_GT_OQ), v, r->ceiling);
    }
    return v;
}

__attribute__((target("avx512f"), always_inline)) static inline epilogue_columns epilogue_columns_avx512(const laq_epilogue *e, long j,
                                                                                                          __mmask16 mask) {
    epilogue_columns c;
    c.has_bias = e->bias != 0;
    c.has_scale = e->scale != 0;
    c.bias = c.has_bias ? _mm512_maskz_loadu_ps(mask, e->bias + j) : _mm512_setzero_ps();
    c.scale = c.has_scale ? _mm512_maskz_loadu_ps(mask, e->scale + j) : _mm512_setzero_ps();
    c.shift = c.has_scale ? _mm512_maskz_loadu_ps(mask, e->shift + j) : _mm512_setzero_ps();
    c.relu = epilogue_relu_avx512(e->relu, e->threshold, e->slope, e->ceiling);
    c.after = epilogue_relu_avx512(e->after_relu, e->after_threshold, e->after_slope, e->after_ceiling);
    return c;
}

// v (16 columns' results) through the epilogue whose values `c` holds, up to the residual.
__attribute__((target("avx512f"), always_inline)) static inline __m512 epilogue_apply_avx512(__m512 v, const epilogue_columns *c) {
    if (c->has_bias) v = _mm512_add_ps(v, c->bias);
    if (c->has_scale) v = epilogue_apply_relu(_mm512_add_ps(_mm512_mul_ps(v, c->scale), c->shift), &c->relu);
    return v;
}

// The residual Add of v and the residual's 16 values at `r` (the lanes of `mask`), then the
// ReLU after it.
__attribute__((target("avx512f"), always_inline)) static inline __m512 epilogue_residual_avx512(__m512 v, const laq_epilogue *e,
                                                                                                  const epilogue_columns *c, const float *r,
                                                                                                  __mmask16 mask) {
    const __m512 x = _mm512_maskz_loadu_ps(mask, r);
    return epilogue_apply_relu(e->residual_first ? _mm512_add_ps(x, v) : _mm512_add_ps(v, x), &c->after);
}

// 16 columns from j (the lanes of `mask`) through the epilogue.
__attribute__((target("avx512f"), always_inline)) static inline __m512 epilogue_avx512(__m512 v, const laq_epilogue *e, long j,
                                                                                         __mmask16 mask) {
    const epilogue_columns c = epilogue_columns_avx512(e, j, mask);
    return epilogue_apply_avx512(v, &c);
}

// The same for AVX2, 8 columns at a time: lanes as the kernels' masks (all bits set: a lane in use).
typedef struct {
    __m256 threshold, slope, ceiling;
    int mode, shifted;
} epilogue_relu8;

typedef struct {
    __m256 bias, scale, shift;
    int has_bias, has_scale;
    epilogue_relu8 relu, after;
} epilogue_columns8;

__attribute__((target("avx2,fma"), always_inline)) static inline epilogue_relu8 epilogue_relu_avx2(int mode, float threshold, float slope,
                                                                                                   float ceiling) {
    epilogue_relu8 r;
    r.mode = mode;
    r.threshold = _mm256_set1_ps(threshold);
    r.slope = _mm256_set1_ps(slope);
    r.ceiling = _mm256_set1_ps(ceiling);
    r.shifted = threshold != 0;
    return r;
}

// _mm256_blendv_ps(a, b, m) takes b where m is set: the selections of epilogue_apply_relu.
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 epilogue_apply_relu8(__m256 v, const epilogue_relu8 *r) {
    if (r->mode == LAQ_RELU_MAX0) return _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps(_mm256_setzero_ps(), v, _CMP_GE_OQ));
    if (r->mode == LAQ_RELU_KERAS) {
        const __m256 below = _mm256_mul_ps(r->slope, r->shifted ? _mm256_sub_ps(v, r->threshold) : v);
        v = _mm256_blendv_ps(below, v, _mm256_cmp_ps(v, r->threshold, _CMP_GE_OQ));
        return _mm256_blendv_ps(v, r->ceiling, _mm256_cmp_ps(v, r->ceiling, _CMP_GT_OQ));
    }
    return v;
}

// A masked load, or where `full` (every lane in use) a plain one: AMD's cores take many cycles
// for a masked load or store (VMASKMOVPS), a plain one a fraction of one.
#define LAQ_LOAD8(p, mask, full) ((full) ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (mask)))
#define LAQ_STORE8(p, mask, v, full)                      \
    do {                                                  \
        if (full) _mm256_storeu_ps((p), (v));             \
        else _mm256_maskstore_ps((p), (mask), (v));       \
    } while (0)

__attribute__((target("avx2,fma"), always_inline)) static inline epilogue_columns8 epilogue_columns_avx2(const laq_epilogue *e, long j,
                                                                                                        __m256i mask, const int full) {
    epilogue_columns8 c;
    c.has_bias = e->bias != 0;
    c.has_scale = e->scale != 0;
    c.bias = c.has_bias ? LAQ_LOAD8(e->bias + j, mask, full) : _mm256_setzero_ps();
    c.scale = c.has_scale ? LAQ_LOAD8(e->scale + j, mask, full) : _mm256_setzero_ps();
    c.shift = c.has_scale ? LAQ_LOAD8(e->shift + j, mask, full) : _mm256_setzero_ps();
    c.relu = epilogue_relu_avx2(e->relu, e->threshold, e->slope, e->ceiling);
    c.after = epilogue_relu_avx2(e->after_relu, e->after_threshold, e->after_slope, e->after_ceiling);
    return c;
}

__attribute__((target("avx2,fma"), always_inline)) static inline __m256 epilogue_apply_avx2(__m256 v, const epilogue_columns8 *c) {
    if (c->has_bias) v = _mm256_add_ps(v, c->bias);
    if (c->has_scale) v = epilogue_apply_relu8(_mm256_add_ps(_mm256_mul_ps(v, c->scale), c->shift), &c->relu);
    return v;
}

__attribute__((target("avx2,fma"), always_inline)) static inline __m256 epilogue_residual_avx2(__m256 v, const laq_epilogue *e,
                                                                                               const epilogue_columns8 *c, const float *r,
                                                                                               __m256i mask, const int full) {
    const __m256 x = LAQ_LOAD8(r, mask, full);
    return epilogue_apply_relu8(e->residual_first ? _mm256_add_ps(x, v) : _mm256_add_ps(v, x), &c->after);
}
#endif

#endif
