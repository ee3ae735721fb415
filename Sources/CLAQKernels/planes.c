// Plane-matrix kernels (see include/laq_kernels.h for the layout). Each block of 64 output
// columns keeps its accumulators in registers while it streams its rows' plane words; each
// term is x_k · level, the level chosen per lane by the plane bits (masked moves on AVX-512,
// sign-bit blends on AVX2, a branch-free select in scalar code).
#include "laq_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

int laq_kernels_best_isa(void) {
#if defined(__x86_64__)
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return LAQ_ISA_SCALAR;
    const int osxsave = (ecx >> 27) & 1, fma = (ecx >> 12) & 1, avx = (ecx >> 28) & 1;
    if (!osxsave || !avx) return LAQ_ISA_SCALAR;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    const int ymm_state = (xcr0_lo & 0x6) == 0x6, zmm_state = (xcr0_lo & 0xE6) == 0xE6;
    if (!ymm_state || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return LAQ_ISA_SCALAR;
    const int avx2 = (ebx >> 5) & 1, avx512f = (ebx >> 16) & 1, avx512bw = (ebx >> 30) & 1, vnni = (ecx >> 11) & 1;
    if (avx512f && avx512bw && vnni && zmm_state && fma) return LAQ_ISA_AVX512_VNNI;
    if (avx512f && zmm_state && fma) return LAQ_ISA_AVX512;
    if (avx2 && fma) return LAQ_ISA_AVX2;
#endif
    return LAQ_ISA_SCALAR;
}

// One block: dst[0..64) (+)= Σ_k x[k] · level(k, j). `w` points at the block's first word,
// `lv` at levels[0·npad + 64·b].
static inline __attribute__((always_inline)) void block_scalar(const float *x, long k, const uint64_t *w, int planes,
                                                               const float *lv, long npad, float *dst) {
    for (long row = 0; row < k; row++) {
        const float xv = x[row];
        if (xv == 0) continue;
        const uint64_t p0 = planes > 0 ? w[row * planes] : 0, p1 = planes > 1 ? w[row * planes + 1] : 0;
        for (int j = 0; j < 64; j++) {
            const int code = (int)((p0 >> j) & 1) + 2 * (int)((p1 >> j) & 1);
            dst[j] += xv * lv[code * npad + j];
        }
    }
}

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f,fma"), always_inline)) static inline
#define AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

// AVX-512 sums instead of selecting: S_p[j] = Σ_{k: code(k, j) = p + 1} x[k] by one masked add
// per plane and 16 lanes (masks loaded straight from the word: bits 16q… are its q-th 16-bit
// piece, little-endian), then dst[j] (+)= l0[j]·(T − Σ_p S_p[j]) + Σ_p l_{p+1}[j]·S_p[j] with
// T = Σ_k x[k]. Levels are finite, so the l0 term vanishes exactly when l0 = 0: the caller
// numbers codes so that a zero level, when there is one, is code 0.
// Rows of A are taken two at a time (R = 2) so that each mask load serves both.
AVX512 void block_avx512_p(const float *x, long lda, const int rows_a, long k, const uint64_t *w, const int planes,
                           const float *lv, long npad, const float *total, float *dst, long ldd) {
    __m512 s0[2][4], s1[2][4];
    for (int r = 0; r < 2; r++)
        for (int q = 0; q < 4; q++) s0[r][q] = s1[r][q] = _mm512_setzero_ps();
    if (planes > 0) {
        // Plane 1 sums by masked multiply-adds of x·1 (exact): they issue to the FMA pipes while
        // plane 0's masked adds take the adder pipes. The barrier keeps the compiler from turning
        // them back into adds.
        __m512 one = _mm512_set1_ps(1.0f);
        __asm__("" : "+v"(one));
        for (long row = 0; row < k; row++) {
            __m512 xs[2];
            for (int r = 0; r < rows_a; r++) xs[r] = _mm512_set1_ps(x[r * lda + row]);
            const __mmask16 *m0 = (const __mmask16 *)(w + row * planes), *m1 = m0 + 4;
            for (int q = 0; q < 4; q++) {
                const __mmask16 k0 = _load_mask16((__mmask16 *)m0 + q);
                const __mmask16 k1 = planes > 1 ? _load_mask16((__mmask16 *)m1 + q) : 0;
                for (int r = 0; r < rows_a; r++) {
                    s0[r][q] = _mm512_mask_add_ps(s0[r][q], k0, s0[r][q], xs[r]);
                    if (planes > 1) s1[r][q] = _mm512_mask3_fmadd_ps(xs[r], one, s1[r][q], k1);
                }
            }
        }
    }
    for (int r = 0; r < rows_a; r++) {
        const __m512 t = _mm512_set1_ps(total[r]);
        for (int q = 0; q < 4; q++) {
            const __m512 rest = _mm512_sub_ps(_mm512_sub_ps(t, s0[r][q]), s1[r][q]);
            __m512 y = _mm512_mul_ps(_mm512_loadu_ps(lv + 16 * q), rest);
            if (planes > 0) y = _mm512_fmadd_ps(_mm512_loadu_ps(lv + npad + 16 * q), s0[r][q], y);
            if (planes > 1) y = _mm512_fmadd_ps(_mm512_loadu_ps(lv + 2 * npad + 16 * q), s1[r][q], y);
            float *d = dst + r * ldd + 16 * q;
            _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), y));
        }
    }
}

__attribute__((target("avx512f,fma"))) static void block_avx512(const float *x, long lda, int rows_a, long k, const uint64_t *w,
                                                               int planes, const float *lv, long npad, const float *total,
                                                               float *dst) {
    if (rows_a == 2) {
        switch (planes) {
        case 0: block_avx512_p(x, lda, 2, k, w, 0, lv, npad, total, dst, 64); break;
        case 1: block_avx512_p(x, lda, 2, k, w, 1, lv, npad, total, dst, 64); break;
        default: block_avx512_p(x, lda, 2, k, w, 2, lv, npad, total, dst, 64); break;
        }
    } else {
        switch (planes) {
        case 0: block_avx512_p(x, lda, 1, k, w, 0, lv, npad, total, dst, 64); break;
        case 1: block_avx512_p(x, lda, 1, k, w, 1, lv, npad, total, dst, 64); break;
        default: block_avx512_p(x, lda, 1, k, w, 2, lv, npad, total, dst, 64); break;
        }
    }
}

// Lane i of `sel` holds the plane bit of column 8·q + i in its sign bit.
AVX2 __m256 select_avx2(__m256 a, __m256 b, uint64_t bits, int q) {
    const __m256i shifts = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    const __m256i word = _mm256_set1_epi32((int)(uint32_t)(bits >> (8 * q)));
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_sllv_epi32(word, shifts)));
}

AVX2 void block_avx2_p(const float *x, long k, const uint64_t *w, const int planes,
                       const float *lv, long npad, float *dst) {
    __m256 acc[8];
    for (int q = 0; q < 8; q++) acc[q] = _mm256_loadu_ps(dst + 8 * q);
    for (long row = 0; row < k; row++) {
        const float xv = x[row];
        if (xv == 0) continue;
        const __m256 xs = _mm256_set1_ps(xv);
        const uint64_t p0 = planes > 0 ? w[row * planes] : 0, p1 = planes > 1 ? w[row * planes + 1] : 0;
        for (int q = 0; q < 8; q++) {
            __m256 v = _mm256_loadu_ps(lv + 8 * q);
            if (planes > 0) v = select_avx2(v, _mm256_loadu_ps(lv + npad + 8 * q), p0, q);
            if (planes > 1) v = select_avx2(v, _mm256_loadu_ps(lv + 2 * npad + 8 * q), p1, q);
            acc[q] = _mm256_fmadd_ps(xs, v, acc[q]);
        }
    }
    for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + 8 * q, acc[q]);
}

__attribute__((target("avx2,fma"))) static void block_avx2(const float *x, long k, const uint64_t *w, int planes,
                                                          const float *lv, long npad, float *dst) {
    switch (planes) {
    case 0: block_avx2_p(x, k, w, 0, lv, npad, dst); break;
    case 1: block_avx2_p(x, k, w, 1, lv, npad, dst); break;
    default: block_avx2_p(x, k, w, 2, lv, npad, dst); break;
    }
}
#endif

// One row of one block: dst[0..64) = level(row, j).
static inline void select_scalar(const uint64_t *w, int planes, const float *lv, long npad, float *dst) {
    const uint64_t p0 = planes > 0 ? w[0] : 0, p1 = planes > 1 ? w[1] : 0;
    for (int j = 0; j < 64; j++) dst[j] = lv[((int)((p0 >> j) & 1) + 2 * (int)((p1 >> j) & 1)) * npad + j];
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void select_avx512(const uint64_t *w, int planes, const float *lv, long npad, float *dst) {
    const uint64_t p0 = planes > 0 ? w[0] : 0, p1 = planes > 1 ? w[1] : 0;
    for (int q = 0; q < 4; q++) {
        __m512 v = _mm512_loadu_ps(lv + 16 * q);
        if (planes > 0) v = _mm512_mask_mov_ps(v, (__mmask16)(p0 >> (16 * q)), _mm512_loadu_ps(lv + npad + 16 * q));
        if (planes > 1) v = _mm512_mask_mov_ps(v, (__mmask16)(p1 >> (16 * q)), _mm512_loadu_ps(lv + 2 * npad + 16 * q));
        _mm512_storeu_ps(dst + 16 * q, v);
    }
}

__attribute__((target("avx2,fma"))) static void select_avx2_row(const uint64_t *w, int planes, const float *lv, long npad, float *dst) {
    const uint64_t p0 = planes > 0 ? w[0] : 0, p1 = planes > 1 ? w[1] : 0;
    for (int q = 0; q < 8; q++) {
        __m256 v = _mm256_loadu_ps(lv + 8 * q);
        if (planes > 0) v = select_avx2(v, _mm256_loadu_ps(lv + npad + 8 * q), p0, q);
        if (planes > 1) v = select_avx2(v, _mm256_loadu_ps(lv + 2 * npad + 8 * q), p1, q);
        _mm256_storeu_ps(dst + 8 * q, v);
    }
}
#endif

// dst[r·64 + j] (+)= the block's product for rows r < rows_a (at most 2) of A.
static void block_any(const float *x, long lda, int rows_a, long k, const uint64_t *w, int planes, const float *lv,
                      long npad, const float *total, float *dst, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) { block_avx512(x, lda, rows_a, k, w, planes, lv, npad, total, dst); return; }
#endif
    (void)total;
    for (int r = 0; r < rows_a; r++) {
#if defined(__x86_64__)
        if (isa >= LAQ_ISA_AVX2) { block_avx2(x + r * lda, k, w, planes, lv, npad, dst + 64 * r); continue; }
#endif
        switch (planes) {
        case 0: block_scalar(x + r * lda, k, w, 0, lv, npad, dst + 64 * r); break;
        case 1: block_scalar(x + r * lda, k, w, 1, lv, npad, dst + 64 * r); break;
        default: block_scalar(x + r * lda, k, w, 2, lv, npad, dst + 64 * r); break;
        }
    }
    (void)isa;
}

void laq_planes_multiply(const float *a, long lda, long m, long k, long n,
                         const uint64_t *planes, int plane_count, const float *levels,
                         float *c, long ldc, int accumulate,
                         long block_begin, long block_end, int isa) {
    const long npad = (n + 63) / 64 * 64;
    float tile[2 * 64] __attribute__((aligned(64)));
    for (long r = 0; r < m; r += 2) {
        const int rows_a = m - r < 2 ? (int)(m - r) : 2;
        float total[2] = {0, 0};
        for (int i = 0; i < rows_a; i++)
            for (long j = 0; j < k; j++) total[i] += a[(r + i) * lda + j];
        for (long b = block_begin; b < block_end; b++) {
            const long first = 64 * b, width = n - first < 64 ? n - first : 64;
            for (int i = 0; i < rows_a; i++) {
                float *out = c + (r + i) * ldc + first;
                if (accumulate) memcpy(tile + 64 * i, out, (size_t)width * sizeof(float));
                const long from = accumulate ? width : 0;
                memset(tile + 64 * i + from, 0, (size_t)(64 - from) * sizeof(float));
            }
            block_any(a + r * lda, lda, rows_a, k, planes + b * k * plane_count, plane_count, levels + first, npad, total,
                      tile, isa);
            for (int i = 0; i < rows_a; i++) memcpy(c + (r + i) * ldc + first, tile + 64 * i, (size_t)width * sizeof(float));
        }
    }
}

void laq_planes_decode(const uint64_t *planes, int plane_count, long k, long n, const float *levels,
                       long start, long count, float *out) {
    const long npad = (n + 63) / 64 * 64;
    long row = n > 0 ? start / n : 0, column = n > 0 ? start % n : 0;
    for (long i = 0; i < count; i++) {
        const long b = column / 64, j = column % 64;
        const uint64_t *w = planes + (b * k + row) * plane_count;
        int code = 0;
        if (plane_count > 0) code += (int)((w[0] >> j) & 1);
        if (plane_count > 1) code += 2 * (int)((w[1] >> j) & 1);
        out[i] = levels[code * npad + column];
        if (++column == n) { column = 0; row++; }
    }
}

void laq_planes_decode_rows(const uint64_t *planes, int plane_count, long k, long n, const float *levels,
                            long row_begin, long row_end, float *out, int isa) {
    const long npad = (n + 63) / 64 * 64, blocks = npad / 64;
    float tile[64] __attribute__((aligned(64)));
    for (long row = row_begin; row < row_end; row++) {
        float *destination = out + (row - row_begin) * n;
        for (long b = 0; b < blocks; b++) {
            const long first = 64 * b, width = n - first < 64 ? n - first : 64;
            const uint64_t *w = planes + (b * k + row) * plane_count;
            float *dst = width == 64 ? destination + first : tile;
#if defined(__x86_64__)
            if (isa >= LAQ_ISA_AVX512) select_avx512(w, plane_count, levels + first, npad, dst);
            else if (isa >= LAQ_ISA_AVX2) select_avx2_row(w, plane_count, levels + first, npad, dst);
            else
#endif
                select_scalar(w, plane_count, levels + first, npad, dst);
            if (width < 64) memcpy(destination + first, tile, (size_t)width * sizeof(float));
        }
    }
    (void)isa;
}
