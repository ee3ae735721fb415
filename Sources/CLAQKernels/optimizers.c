// Optimizer updates over large tensors: the same IEEE operations per element on every
// instruction set (no contraction into fused multiply-adds), so every ISA gives the same bits.
#include "laq_kernels.h"

#include <math.h>

#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static long adam_avx512(float *w, float *m, float *v, const float *g, long n, float scale,
                                                          float beta1, float beta2, float alpha, float epsilon) {
    const __m512 s = _mm512_set1_ps(scale), b1 = _mm512_set1_ps(1 - beta1), b2 = _mm512_set1_ps(1 - beta2);
    const __m512 a = _mm512_set1_ps(alpha), e = _mm512_set1_ps(epsilon);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 grad = _mm512_mul_ps(_mm512_loadu_ps(g + i), s);
        __m512 mm = _mm512_loadu_ps(m + i), vv = _mm512_loadu_ps(v + i);
        mm = _mm512_add_ps(mm, _mm512_mul_ps(_mm512_sub_ps(grad, mm), b1));
        vv = _mm512_add_ps(vv, _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(grad, grad), vv), b2));
        const __m512 step = _mm512_div_ps(_mm512_mul_ps(a, mm), _mm512_add_ps(_mm512_sqrt_ps(vv), e));
        _mm512_storeu_ps(m + i, mm);
        _mm512_storeu_ps(v + i, vv);
        _mm512_storeu_ps(w + i, _mm512_sub_ps(_mm512_loadu_ps(w + i), step));
    }
    return i;
}

__attribute__((target("avx2"))) static long adam_avx2(float *w, float *m, float *v, const float *g, long n, float scale,
                                                     float beta1, float beta2, float alpha, float epsilon) {
    const __m256 s = _mm256_set1_ps(scale), b1 = _mm256_set1_ps(1 - beta1), b2 = _mm256_set1_ps(1 - beta2);
    const __m256 a = _mm256_set1_ps(alpha), e = _mm256_set1_ps(epsilon);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 grad = _mm256_mul_ps(_mm256_loadu_ps(g + i), s);
        __m256 mm = _mm256_loadu_ps(m + i), vv = _mm256_loadu_ps(v + i);
        mm = _mm256_add_ps(mm, _mm256_mul_ps(_mm256_sub_ps(grad, mm), b1));
        vv = _mm256_add_ps(vv, _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(grad, grad), vv), b2));
        const __m256 step = _mm256_div_ps(_mm256_mul_ps(a, mm), _mm256_add_ps(_mm256_sqrt_ps(vv), e));
        _mm256_storeu_ps(m + i, mm);
        _mm256_storeu_ps(v + i, vv);
        _mm256_storeu_ps(w + i, _mm256_sub_ps(_mm256_loadu_ps(w + i), step));
    }
    return i;
}
#endif

void laq_adam_update(float *w, float *m, float *v, const float *g, long n, float scale, float beta1, float beta2,
                     float alpha, float epsilon, int isa) {
    long i = 0;
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) i = adam_avx512(w, m, v, g, n, scale, beta1, beta2, alpha, epsilon);
    else if (isa >= LAQ_ISA_AVX2) i = adam_avx2(w, m, v, g, n, scale, beta1, beta2, alpha, epsilon);
#endif
    (void)isa;
    for (; i < n; i++) {
        const float grad = g[i] * scale;
        m[i] = m[i] + (grad - m[i]) * (1 - beta1);
        v[i] = v[i] + (grad * grad - v[i]) * (1 - beta2);
        w[i] = w[i] - alpha * m[i] / (sqrtf(v[i]) + epsilon);
    }
}
