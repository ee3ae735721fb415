// GELU, 0.5·x·(1 + erf(x/√2)) (Keras' exact gelu), over arrays (spec of laq_erff and laq_geluf in
// include/laq_kernels.h).
//
// erf(x) for x clamped to [−4, 4] (beyond, erf is ±1 in float32) is x·P(x²)/Q(x²), P of degree 6
// and Q of degree 4 in x²: the rational approximation Eigen's fast float erf uses (and with it
// TensorFlow's CPU erf, which Keras' gelu calls), within 4.2·10⁻⁷ of erf, both polynomials
// evaluated by fused multiply-adds in Horner's order. The vector code does these same IEEE
// operations in the same order as the scalar code (fmaf is correctly rounded, as the instruction
// is): every instruction set gives the scalar function's bits; a NaN stays NaN.
//
// glibc's erff through a closure took about 10 ns a value; ConvNeXt applies GELU to its 4×-wide
// MLP activations (docs/PERFORMANCE.md, "GELU").
#include "laq_kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma clang fp contract(off)

static const float A1 = -1.60960333262415e-02f, A3 = -2.95459980854025e-03f, A5 = -7.34990630326855e-04f,
                   A7 = -5.69250639462346e-05f, A9 = -2.10102402082508e-06f, A11 = 2.77068142495902e-08f,
                   A13 = -2.72614225801306e-10f;
static const float B0 = -1.42647390514189e-02f, B2 = -7.37332916720468e-03f, B4 = -1.68282697438203e-03f,
                   B6 = -2.13374055278905e-04f, B8 = -1.45660718464996e-05f;
static const float INVERSE_ROOT2 = 0.7071067811865475f;

float laq_erff(float x) {
    if (x != x) return x;
    const float c = x > 4.0f ? 4.0f : x < -4.0f ? -4.0f : x;
    const float x2 = c * c;
    float p = __builtin_fmaf(x2, A13, A11);
    p = __builtin_fmaf(x2, p, A9);
    p = __builtin_fmaf(x2, p, A7);
    p = __builtin_fmaf(x2, p, A5);
    p = __builtin_fmaf(x2, p, A3);
    p = __builtin_fmaf(x2, p, A1);
    p = c * p;
    float q = __builtin_fmaf(x2, B8, B6);
    q = __builtin_fmaf(x2, q, B4);
    q = __builtin_fmaf(x2, q, B2);
    q = __builtin_fmaf(x2, q, B0);
    return p / q;
}

float laq_geluf(float x) { return (0.5f * x) * (1.0f + laq_erff(x * INVERSE_ROOT2)); }

#if defined(__x86_64__)
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 gelu8(__m256 x) {
    const __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(INVERSE_ROOT2));
    const __m256 c = _mm256_max_ps(_mm256_min_ps(u, _mm256_set1_ps(4.0f)), _mm256_set1_ps(-4.0f));
    const __m256 x2 = _mm256_mul_ps(c, c);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(A13), _mm256_set1_ps(A11));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(A9));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(A7));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(A5));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(A3));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(A1));
    p = _mm256_mul_ps(c, p);
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(B8), _mm256_set1_ps(B6));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(B4));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(B2));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(B0));
    // A NaN's lanes: erf(NaN) = NaN, as the scalar code returns it.
    const __m256 erf = _mm256_blendv_ps(_mm256_div_ps(p, q), u, _mm256_cmp_ps(u, u, _CMP_UNORD_Q));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}

__attribute__((target("avx2,fma"))) static long gelu_avx2(float *values, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(values + i, gelu8(_mm256_loadu_ps(values + i)));
    return i;
}
#endif

void laq_gelu(float *values, long count, int isa) {
    long i = 0;
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX2) i = gelu_avx2(values, count);
#endif
    (void)isa;
    for (; i < count; i++) values[i] = laq_geluf(values[i]);
}
