// The logistic sigmoid and swish (SiLU) over arrays (spec of laq_sigmoidf in
// include/laq_kernels.h).
//
// σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) for x < 0, with e = exp(−|x|) ∈ (0, 1], so that
// nothing overflows. exp(t) for t = −|x| ≤ 0 is 2ⁿ·exp(r): n = rint(t·log₂e), r = t − n·ln 2 in two
// fused multiply-adds (ln 2 split into a high part exact in 9 bits and the rest), |r| ≤ ln 2 / 2;
// exp(r) = 1 + r + r²·P(r), P Cephes' degree-5 polynomial of expf (within 2 ulp of e^r on that
// interval), evaluated by fused multiply-adds in Horner's order; 2ⁿ is built from its exponent
// bits (n ≥ −126: a normal number, so the product is exact). Below t = −87.33 (σ < 1.2·10⁻³⁸) e
// is 0. The vector code does these same IEEE operations in the same order, and the scalar code
// uses fmaf (correctly rounded, as the instruction is) and nearbyintf (ties to even, as
// _mm256_round_ps): every instruction set gives the scalar function's bits, a NaN stays NaN.
//
// glibc's expf through a closure took 10–20 ns a value: EfficientNetB0's swish activations
// took more of its time than its convolutions (docs/PERFORMANCE.md, "Sigmoid and swish").
#include "laq_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma clang fp contract(off)

static const float LOG2E = 1.44269504088896341f, LN2_HIGH = 0.693359375f, LN2_LOW = -2.12194440e-4f, FLOOR = -87.33f;
static const float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f, P3 = 4.1665795894e-2f,
                   P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

// exp(t) for FLOOR ≤ t ≤ 0, as described above.
static inline float exp_nonpositive(float t) {
    const float n = nearbyintf(t * LOG2E);
    float r = fmaf(-n, LN2_HIGH, t);
    r = fmaf(-n, LN2_LOW, r);
    float p = fmaf(P0, r, P1);
    p = fmaf(p, r, P2);
    p = fmaf(p, r, P3);
    p = fmaf(p, r, P4);
    p = fmaf(p, r, P5);
    const float z = r * r;
    const float er = fmaf(p, z, r) + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return er * scale;
}

float laq_sigmoidf(float x) {
    if (x != x) return x;
    const float t = -fabsf(x);
    const float e = t < FLOOR ? 0.0f : exp_nonpositive(t);
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 sigmoid8(__m256 x) {
    const __m256 negative = _mm256_or_ps(x, _mm256_set1_ps(-0.0f));  // −|x|, as −fabsf(x)
    const __m256 below = _mm256_cmp_ps(negative, _mm256_set1_ps(FLOOR), _CMP_LT_OQ);
    // Below the floor (and for NaN, replaced at the end) any t in range does: use 0.
    const __m256 s = _mm256_blendv_ps(negative, _mm256_setzero_ps(), _mm256_or_ps(below, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(s, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 minus_n = _mm256_xor_ps(n, _mm256_set1_ps(-0.0f));
    __m256 r = _mm256_fmadd_ps(minus_n, _mm256_set1_ps(LN2_HIGH), s);
    r = _mm256_fmadd_ps(minus_n, _mm256_set1_ps(LN2_LOW), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(P0), r, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
    const __m256 z = _mm256_mul_ps(r, r);
    const __m256 er = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 e = _mm256_mul_ps(er, _mm256_castsi256_ps(bits));
    e = _mm256_blendv_ps(e, _mm256_setzero_ps(), below);
    const __m256 one_plus = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
    const __m256 nonnegative = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);
    const __m256 y = _mm256_div_ps(_mm256_blendv_ps(e, _mm256_set1_ps(1.0f), nonnegative), one_plus);
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

__attribute__((target("avx2,fma"))) static long sigmoid_avx2(float *values, long count, int swish) {
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256 x = _mm256_loadu_ps(values + i), y = sigmoid8(x);
        _mm256_storeu_ps(values + i, swish ? _mm256_mul_ps(x, y) : y);
    }
    return i;
}
#endif

static void sigmoid_array(float *values, long count, int swish, int isa) {
    long i = 0;
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX2) i = sigmoid_avx2(values, count, swish);
#endif
    (void)isa;
    for (; i < count; i++) values[i] = swish ? values[i] * laq_sigmoidf(values[i]) : laq_sigmoidf(values[i]);
}

void laq_sigmoid(float *values, long count, int isa) { sigmoid_array(values, count, 0, isa); }

void laq_swish(float *values, long count, int isa) { sigmoid_array(values, count, 1, isa); }
