// Plane-matrix kernels (see include/laq_kernels.h for the layout). Each block of 64 output
// columns keeps its accumulators in registers while it streams its rows' plane words.
//
// SIMD kernels sum: S_p[j] = Σ_{k: plane p has bit (k, j)} x[k] (a masked add per plane and 16
// lanes on AVX-512, a table mask, an AND and an add per 8 lanes on AVX2), then combine per column
// with the sum levels L (header): y[j] = L₀[j]·(T − Σ_p S_p[j]) + Σ_p L_{p+1}[j]·S_p[j], T = Σ x.
// The scalar kernel is the reference: each term x[k]·level[code(k, j)], selected by code.
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
    const int vbmi = (ecx >> 1) & 1, gfni = (ecx >> 8) & 1;
    if (avx512f && avx512bw && vnni && vbmi && gfni && zmm_state && fma) return LAQ_ISA_AVX512_GFNI;
    if (avx512f && avx512bw && vnni && zmm_state && fma) return LAQ_ISA_AVX512_VNNI;
    if (avx512f && zmm_state && fma) return LAQ_ISA_AVX512;
    if (avx2 && fma) return LAQ_ISA_AVX2;
#endif
    return LAQ_ISA_SCALAR;
}


// The level of column j (0…63) from one row's plane words `w` (P words) and its block's table
// `lv` (rows `stride` apart).
static inline float level_at(const uint64_t *w, int planes, int kind, const float *lv, long stride, int j) {
    if (kind == LAQ_PLANES_SIGNED) {
        int magnitude = 0;
        for (int p = 1; p < planes; p++)
            if ((w[p] >> j) & 1) magnitude = p;
        const float v = lv[magnitude * stride + j];
        return (w[0] >> j) & 1 ? -v : v;
    }
    int code = 0;
    for (int p = 0; p < planes; p++)
        if ((w[p] >> j) & 1) code = kind == LAQ_PLANES_ONE_HOT ? p + 1 : code | 1 << p;
    return lv[code * stride + j];
}

// Rows of a block's level table: P + 1 codes (one-hot), 2^P (bits), P (signed: 0 and the
// magnitudes).
static inline long table_rows(int planes, int kind) {
    return kind == LAQ_PLANES_ONE_HOT ? planes + 1 : kind == LAQ_PLANES_SIGNED ? planes : 1L << planes;
}

// dst[0..64) += Σ_k x[k] · level(k, j), zeros of x skipped.
static void block_scalar(const float *x, long k, const uint64_t *w, int planes, int kind,
                         const float *lv, long stride, float *dst) {
    for (long row = 0; row < k; row++) {
        const float xv = x[row];
        if (xv == 0) continue;
        for (int j = 0; j < 64; j++) dst[j] += xv * level_at(w + row * planes, planes, kind, lv, stride, j);
    }
}

// dst[j] += L₀[j]·(T − Σ_p S_p[j]) + Σ_p L_{p+1}[j]·S_p[j] for one block (sums: P × 64).
static void combine(const float *sums, int planes, float total, const float *sl, long stride, float *dst) {
    for (int j = 0; j < 64; j++) {
        float rest = total, y = 0;
        for (int p = 0; p < planes; p++) {
            rest -= sums[64 * p + j];
            y += sl[(p + 1) * stride + j] * sums[64 * p + j];
        }
        dst[j] += sl[j] * rest + y;
    }
}

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f,fma"), always_inline)) static inline
#define AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

// Masks are loaded straight from the words (little-endian: bits 16q… are a word's q-th 16-bit
// piece). Odd planes sum by masked multiply-adds of x·1 (exact), issued to the FMA pipes while
// even planes' masked adds take the adder pipes; the barrier keeps the compiler from turning
// them back into adds. Rows of A are taken two at a time when P ≤ 2, so that each mask load
// serves both.
AVX512 void block_avx512_p(const float *x, long lda, const int rows_a, long k, const uint64_t *w, const int planes,
                           const int sign, const float *sl, long stride, const float *total, float *dst) {
    __m512 s[2][LAQ_MAX_PLANES][4];
    for (int r = 0; r < rows_a; r++)
        for (int p = 0; p < planes; p++)
            for (int q = 0; q < 4; q++) s[r][p][q] = _mm512_setzero_ps();
    if (planes > 0) {
        __m512 one = _mm512_set1_ps(1.0f);
        __asm__("" : "+v"(one));
        for (long row = 0; row < k; row++) {
            __m512 xs[2];
            for (int r = 0; r < rows_a; r++) xs[r] = _mm512_set1_ps(x[r * lda + row]);
            const __mmask16 *m = (const __mmask16 *)(w + row * planes);
            for (int q = 0; q < 4; q++) {
                // Signed planes: plane 0 negates x where it is set, and is not summed itself.
                __m512 v[2];
                const __mmask16 negative = sign ? _load_mask16((__mmask16 *)m + q) : 0;
                for (int r = 0; r < rows_a; r++)
                    v[r] = sign ? _mm512_mask_sub_ps(xs[r], negative, _mm512_setzero_ps(), xs[r]) : xs[r];
                for (int p = sign ? 1 : 0; p < planes; p++) {
                    const __mmask16 mask = _load_mask16((__mmask16 *)m + 4 * p + q);
                    for (int r = 0; r < rows_a; r++)
                        s[r][p][q] = p % 2 == 0 ? _mm512_mask_add_ps(s[r][p][q], mask, s[r][p][q], v[r])
                                                : _mm512_mask3_fmadd_ps(v[r], one, s[r][p][q], mask);
                }
            }
        }
    }
    for (int r = 0; r < rows_a; r++) {
        const __m512 t = _mm512_set1_ps(total[r]);
        for (int q = 0; q < 4; q++) {
            __m512 rest = t, y = _mm512_setzero_ps();
            for (int p = 0; p < planes; p++) {
                rest = _mm512_sub_ps(rest, s[r][p][q]);
                y = _mm512_fmadd_ps(_mm512_loadu_ps(sl + (p + 1) * stride + 16 * q), s[r][p][q], y);
            }
            y = _mm512_fmadd_ps(_mm512_loadu_ps(sl + 16 * q), rest, y);
            float *d = dst + 64 * r + 16 * q;
            _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), y));
        }
    }
}

// Rows of A in pairs only with P ≤ 2 (the accumulators of two rows fill the registers).
__attribute__((target("avx512f,fma"))) static void block_avx512(const float *x, long lda, int rows_a, long k, const uint64_t *w,
                                                               int planes, int sign, const float *sl, long stride,
                                                               const float *total, float *dst) {
    if (sign) {
        switch (planes) {
        case 2: block_avx512_p(x, lda, 1, k, w, 2, 1, sl, stride, total, dst); break;
        case 3: block_avx512_p(x, lda, 1, k, w, 3, 1, sl, stride, total, dst); break;
        default: block_avx512_p(x, lda, 1, k, w, 4, 1, sl, stride, total, dst); break;
        }
        return;
    }
    switch (planes * 2 + (rows_a == 2)) {
    case 0: block_avx512_p(x, lda, 1, k, w, 0, 0, sl, stride, total, dst); break;
    case 1: block_avx512_p(x, lda, 2, k, w, 0, 0, sl, stride, total, dst); break;
    case 2: block_avx512_p(x, lda, 1, k, w, 1, 0, sl, stride, total, dst); break;
    case 3: block_avx512_p(x, lda, 2, k, w, 1, 0, sl, stride, total, dst); break;
    case 4: block_avx512_p(x, lda, 1, k, w, 2, 0, sl, stride, total, dst); break;
    case 5: block_avx512_p(x, lda, 2, k, w, 2, 0, sl, stride, total, dst); break;
    case 6: block_avx512_p(x, lda, 1, k, w, 3, 0, sl, stride, total, dst); break;
    default: block_avx512_p(x, lda, 1, k, w, 4, 0, sl, stride, total, dst); break;
    }
}

// lane_masks[b][i]: all ones where bit i of the byte b is set, else zero (8 KiB).
#define LAQ_MASK(b, i) ((((b) >> (i)) & 1) ? 0xFFFFFFFFu : 0u)
#define LAQ_MASKS1(b) \
    {LAQ_MASK(b, 0), LAQ_MASK(b, 1), LAQ_MASK(b, 2), LAQ_MASK(b, 3), LAQ_MASK(b, 4), LAQ_MASK(b, 5), LAQ_MASK(b, 6), LAQ_MASK(b, 7)}
#define LAQ_MASKS4(b) LAQ_MASKS1(b), LAQ_MASKS1((b) + 1), LAQ_MASKS1((b) + 2), LAQ_MASKS1((b) + 3)
#define LAQ_MASKS16(b) LAQ_MASKS4(b), LAQ_MASKS4((b) + 4), LAQ_MASKS4((b) + 8), LAQ_MASKS4((b) + 12)
#define LAQ_MASKS64(b) LAQ_MASKS16(b), LAQ_MASKS16((b) + 16), LAQ_MASKS16((b) + 32), LAQ_MASKS16((b) + 48)
static const uint32_t lane_masks[256][8] __attribute__((aligned(32))) = {LAQ_MASKS64(0), LAQ_MASKS64(64), LAQ_MASKS64(128),
                                                                         LAQ_MASKS64(192)};
#undef LAQ_MASK
#undef LAQ_MASKS1
#undef LAQ_MASKS4
#undef LAQ_MASKS16
#undef LAQ_MASKS64

// Lane i of the result is all ones where bit 8·q + i of `bits` is set, else zero: one load from
// the table, where a broadcast and a variable shift took two operations.
AVX2 __m256 lane_bits(uint64_t bits, int q) { return _mm256_load_ps((const float *)lane_masks[(bits >> (8 * q)) & 0xFF]); }

AVX2 void block_avx2_p(const float *x, long k, const uint64_t *w, const int planes, const int sign,
                       const float *sl, long stride, float total, float *dst) {
    float sums[LAQ_MAX_PLANES * 64] __attribute__((aligned(32)));
    if (sign) memset(sums, 0, 64 * sizeof(float));  // the sign plane sums nothing
    for (int p = sign ? 1 : 0; p < planes; p++) {
        __m256 acc[8];
        for (int q = 0; q < 8; q++) acc[q] = _mm256_setzero_ps();
        const __m256 negative = _mm256_set1_ps(-0.0f);
        for (long row = 0; row < k; row++) {
            const float xv = x[row];
            const uint64_t bits = w[row * planes + p];
            if (xv == 0 || bits == 0) continue;
            const __m256 xs = _mm256_set1_ps(xv);
            const uint64_t signs = sign ? w[row * planes] : 0;
            for (int q = 0; q < 8; q++) {
                // x, or −x (its sign bit flipped) where the sign plane is set; then x or +0.
                const __m256 v = sign ? _mm256_xor_ps(xs, _mm256_and_ps(lane_bits(signs, q), negative)) : xs;
                acc[q] = _mm256_add_ps(acc[q], _mm256_and_ps(lane_bits(bits, q), v));
            }
        }
        for (int q = 0; q < 8; q++) _mm256_store_ps(sums + 64 * p + 8 * q, acc[q]);
    }
    combine(sums, planes, total, sl, stride, dst);
}

__attribute__((target("avx2,fma"))) static void block_avx2(const float *x, long k, const uint64_t *w, int planes, int sign,
                                                          const float *sl, long stride, float total, float *dst) {
    switch (planes) {
    case 0: block_avx2_p(x, k, w, 0, 0, sl, stride, total, dst); break;
    case 1: block_avx2_p(x, k, w, 1, 0, sl, stride, total, dst); break;
    case 2: block_avx2_p(x, k, w, 2, sign, sl, stride, total, dst); break;
    case 3: block_avx2_p(x, k, w, 3, sign, sl, stride, total, dst); break;
    default: block_avx2_p(x, k, w, 4, sign, sl, stride, total, dst); break;
    }
}

// One row of one block of a one-hot matrix: dst[0..64) = its levels (P ≤ 2).
__attribute__((target("avx512f"))) static void select_avx512(const uint64_t *w, int planes, const float *lv, long stride, float *dst) {
    const uint64_t p0 = planes > 0 ? w[0] : 0, p1 = planes > 1 ? w[1] : 0;
    for (int q = 0; q < 4; q++) {
        __m512 v = _mm512_loadu_ps(lv + 16 * q);
        if (planes > 0) v = _mm512_mask_mov_ps(v, (__mmask16)(p0 >> (16 * q)), _mm512_loadu_ps(lv + stride + 16 * q));
        if (planes > 1) v = _mm512_mask_mov_ps(v, (__mmask16)(p1 >> (16 * q)), _mm512_loadu_ps(lv + 2 * stride + 16 * q));
        _mm512_storeu_ps(dst + 16 * q, v);
    }
}

// One row of one block of a bit-plane matrix: each lane's level chosen from the 2^P codes by a
// tree of masked moves, bit 0 first (2^P − 1 moves per 16 lanes).
AVX512 void select_bits_avx512_p(const uint64_t *w, const int planes, const float *lv, long stride, float *dst) {
    for (int q = 0; q < 4; q++) {
        __m512 candidates[1 << LAQ_MAX_PLANES];
#pragma clang loop unroll(full)
        for (int code = 0; code < 1 << planes; code++) candidates[code] = _mm512_loadu_ps(lv + code * stride + 16 * q);
#pragma clang loop unroll(full)
        for (int p = 0; p < planes; p++) {
            const __mmask16 mask = (__mmask16)(w[p] >> (16 * q));
#pragma clang loop unroll(full)
            for (int i = 0; i < 1 << (planes - p - 1); i++)
                candidates[i] = _mm512_mask_mov_ps(candidates[2 * i], mask, candidates[2 * i + 1]);
        }
        _mm512_storeu_ps(dst + 16 * q, candidates[0]);
    }
}

__attribute__((target("avx512f,fma"))) static void select_bits_avx512(const uint64_t *w, int planes, const float *lv, long stride,
                                                                      float *dst) {
    switch (planes) {
    case 1: select_bits_avx512_p(w, 1, lv, stride, dst); break;
    case 2: select_bits_avx512_p(w, 2, lv, stride, dst); break;
    case 3: select_bits_avx512_p(w, 3, lv, stride, dst); break;
    default: select_bits_avx512_p(w, 4, lv, stride, dst); break;
    }
}

AVX2 void select_bits_avx2_p(const uint64_t *w, const int planes, const float *lv, long stride, float *dst, int q_begin, int q_end) {
    for (int q = q_begin; q < q_end; q++) {
        __m256 candidates[1 << LAQ_MAX_PLANES];
#pragma clang loop unroll(full)
        for (int code = 0; code < 1 << planes; code++) candidates[code] = _mm256_loadu_ps(lv + code * stride + 8 * q);
#pragma clang loop unroll(full)
        for (int p = 0; p < planes; p++) {
            const __m256 mask = lane_bits(w[p], q);
#pragma clang loop unroll(full)
            for (int i = 0; i < 1 << (planes - p - 1); i++)
                candidates[i] = _mm256_blendv_ps(candidates[2 * i], candidates[2 * i + 1], mask);
        }
        _mm256_storeu_ps(dst + 8 * (q - q_begin), candidates[0]);
    }
}

// The AVX2 selections write dst[8·(q − q_begin) + i] = the level of column 8q + i of the block,
// for the vectors q_begin ≤ q < q_end of its 8.
__attribute__((target("avx2,fma"))) static void select_bits_avx2(const uint64_t *w, int planes, const float *lv, long stride,
                                                                float *dst, int q_begin, int q_end) {
    switch (planes) {
    case 1: select_bits_avx2_p(w, 1, lv, stride, dst, q_begin, q_end); break;
    case 2: select_bits_avx2_p(w, 2, lv, stride, dst, q_begin, q_end); break;
    case 3: select_bits_avx2_p(w, 3, lv, stride, dst, q_begin, q_end); break;
    default: select_bits_avx2_p(w, 4, lv, stride, dst, q_begin, q_end); break;
    }
}

// One row of one block of a signed-plane matrix: the magnitude by masked moves, then negated
// where the sign plane is set.
__attribute__((target("avx512f"))) static void select_signed_avx512(const uint64_t *w, int planes, const float *lv, long stride,
                                                                    float *dst) {
    for (int q = 0; q < 4; q++) {
        __m512 v = _mm512_setzero_ps();
        for (int p = 1; p < planes; p++)
            v = _mm512_mask_mov_ps(v, (__mmask16)(w[p] >> (16 * q)), _mm512_loadu_ps(lv + p * stride + 16 * q));
        _mm512_storeu_ps(dst + 16 * q, _mm512_mask_sub_ps(v, (__mmask16)(w[0] >> (16 * q)), _mm512_setzero_ps(), v));
    }
}

__attribute__((target("avx2,fma"))) static void select_signed_avx2(const uint64_t *w, int planes, const float *lv, long stride,
                                                                  float *dst, int q_begin, int q_end) {
    for (int q = q_begin; q < q_end; q++) {
        __m256 v = _mm256_setzero_ps();
        for (int p = 1; p < planes; p++) v = _mm256_blendv_ps(v, _mm256_loadu_ps(lv + p * stride + 8 * q), lane_bits(w[p], q));
        _mm256_storeu_ps(dst + 8 * (q - q_begin), _mm256_blendv_ps(v, _mm256_sub_ps(_mm256_setzero_ps(), v), lane_bits(w[0], q)));
    }
}

__attribute__((target("avx2,fma"))) static void select_avx2(const uint64_t *w, int planes, const float *lv, long stride, float *dst,
                                                           int q_begin, int q_end) {
    const uint64_t p0 = planes > 0 ? w[0] : 0, p1 = planes > 1 ? w[1] : 0;
    for (int q = q_begin; q < q_end; q++) {
        __m256 v = _mm256_loadu_ps(lv + 8 * q);
        if (planes > 0) v = _mm256_blendv_ps(v, _mm256_loadu_ps(lv + stride + 8 * q), lane_bits(p0, q));
        if (planes > 1) v = _mm256_blendv_ps(v, _mm256_loadu_ps(lv + 2 * stride + 8 * q), lane_bits(p1, q));
        _mm256_storeu_ps(dst + 8 * (q - q_begin), v);
    }
}

// Panel `half` (columns 32·half … +31 of the block) of rows [0, k): the
// selections above on the half's four vectors.
__attribute__((target("avx2,fma"))) static void decode_panel_avx2(const uint64_t *w, int planes, int kind, long k, const float *lv,
                                                                 int half, float *out) {
    // AVX2's panel layout (laq_panel_offset): the panel's 16-column halves g one after the other,
    // each k rows of 16 floats (two of the block's quarters of 8 columns).
    for (int g = 0; g < 2; g++) {
        const int q0 = 4 * half + 2 * g, q1 = q0 + 2;
        for (long t = 0; t < k; t++) {
            const uint64_t *row = w + t * planes;
            float *dst = out + (g * k + t) * 16;
            if (kind == LAQ_PLANES_ONE_HOT && planes <= 2) select_avx2(row, planes, lv, 64, dst, q0, q1);
            else if (kind == LAQ_PLANES_BITS) select_bits_avx2(row, planes, lv, 64, dst, q0, q1);
            else if (kind == LAQ_PLANES_SIGNED) select_signed_avx2(row, planes, lv, 64, dst, q0, q1);
            else
                for (int j = 0; j < 16; j++) dst[j] = level_at(row, planes, kind, lv, 64, 32 * half + 16 * g + j);
        }
    }
}
#endif

// dst[r·64 + j] (+)= the block's product for rows r < rows_a (at most 2) of A.
static void block_any(const float *x, long lda, int rows_a, long k, const uint64_t *w, int planes, int kind,
                      const float *lv, const float *sl, long stride, const float *total, float *dst, int isa) {
    const int sign = kind == LAQ_PLANES_SIGNED;
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        const int paired = planes <= 2 && !sign;
        block_avx512(x, lda, paired ? rows_a : 1, k, w, planes, sign, sl, stride, total, dst);
        if (!paired && rows_a == 2) block_avx512(x + lda, lda, 1, k, w, planes, sign, sl, stride, total + 1, dst + 64);
        return;
    }
#endif
    for (int r = 0; r < rows_a; r++) {
#if defined(__x86_64__)
        if (isa >= LAQ_ISA_AVX2) { block_avx2(x + r * lda, k, w, planes, sign, sl, stride, total[r], dst + 64 * r); continue; }
#endif
        block_scalar(x + r * lda, k, w, planes, kind, lv, stride, dst + 64 * r);
    }
    (void)isa;
    (void)sl;
}

void laq_planes_multiply(const float *a, long lda, long m, long k, long n,
                         const uint64_t *planes, int plane_count, int kind, const float *levels, const float *sum_levels,
                         float *c, long ldc, int accumulate,
                         long block_begin, long block_end, int isa) {
    const long codes = table_rows(plane_count, kind);
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
            block_any(a + r * lda, lda, rows_a, k, planes + b * k * plane_count, plane_count, kind, levels + b * codes * 64,
                      sum_levels + b * (plane_count + 1) * 64, 64, total, tile, isa);
            for (int i = 0; i < rows_a; i++) memcpy(c + (r + i) * ldc + first, tile + 64 * i, (size_t)width * sizeof(float));
        }
    }
}

void laq_planes_decode(const uint64_t *planes, int plane_count, int kind, long k, long n, const float *levels,
                       long start, long count, float *out) {
    const long codes = table_rows(plane_count, kind);
    long row = n > 0 ? start / n : 0, column = n > 0 ? start % n : 0;
    for (long i = 0; i < count; i++) {
        const uint64_t *w = planes + ((column / 64) * k + row) * plane_count;
        out[i] = level_at(w, plane_count, kind, levels + (column / 64) * codes * 64, 64, (int)(column % 64));
        if (++column == n) { column = 0; row++; }
    }
}

void laq_planes_decode_rows(const uint64_t *planes, int plane_count, int kind, long k, long n, const float *levels,
                            long row_begin, long row_end, float *out, int isa) {
    const long blocks = (n + 63) / 64, codes = table_rows(plane_count, kind);
    const int one_hot = kind == LAQ_PLANES_ONE_HOT, bits = kind == LAQ_PLANES_BITS;
    float tile[64] __attribute__((aligned(64)));
    // Block by block, so that the block's levels (up to 16 codes × 64 columns, 4 KiB) stay in
    // L1 while its rows are decoded; row by row, a wide matrix's tables stream from L2.
    for (long b = 0; b < blocks; b++) {
        for (long row = row_begin; row < row_end; row++) {
            float *destination = out + (row - row_begin) * n;
            const long first = 64 * b, width = n - first < 64 ? n - first : 64;
            const uint64_t *w = planes + (b * k + row) * plane_count;
            float *dst = width == 64 ? destination + first : tile;
            const float *lv = levels + b * codes * 64;
#if defined(__x86_64__)
            if (one_hot && plane_count <= 2 && isa >= LAQ_ISA_AVX512) select_avx512(w, plane_count, lv, 64, dst);
            else if (one_hot && plane_count <= 2 && isa >= LAQ_ISA_AVX2) select_avx2(w, plane_count, lv, 64, dst, 0, 8);
            else if (bits && isa >= LAQ_ISA_AVX512) select_bits_avx512(w, plane_count, lv, 64, dst);
            else if (bits && isa >= LAQ_ISA_AVX2) select_bits_avx2(w, plane_count, lv, 64, dst, 0, 8);
            else if (!one_hot && !bits && isa >= LAQ_ISA_AVX512) select_signed_avx512(w, plane_count, lv, 64, dst);
            else if (!one_hot && !bits && isa >= LAQ_ISA_AVX2) select_signed_avx2(w, plane_count, lv, 64, dst, 0, 8);
            else
#endif
                for (int j = 0; j < 64; j++) dst[j] = level_at(w, plane_count, kind, lv, 64, j);
            if (width < 64) memcpy(destination + first, tile, (size_t)width * sizeof(float));
        }
    }
    (void)isa;
}

#if defined(__x86_64__)
// Lanes [lane, lane + 16) of a block, rows 0…k−1, into out[t·32] (a panel's half): the block's
// levels for these lanes stay in registers while the rows stream (for bit planes a tree of
// masked moves, bit 0 first; for signed planes the magnitude, then negated where plane 0 is set).
AVX512 void decode_lanes_avx512(const uint64_t *w, const int planes, const int kind, long k, const float *lv, int lane, float *out) {
    if (kind == LAQ_PLANES_BITS) {
        __m512 levels[1 << LAQ_MAX_PLANES];
#pragma clang loop unroll(full)
        for (int code = 0; code < 1 << planes; code++) levels[code] = _mm512_loadu_ps(lv + code * 64 + lane);
        for (long t = 0; t < k; t++) {
            __m512 candidates[1 << LAQ_MAX_PLANES];
#pragma clang loop unroll(full)
            for (int p = 0; p < planes; p++) {
                const __mmask16 mask = (__mmask16)(w[t * planes + p] >> lane);
#pragma clang loop unroll(full)
                for (int i = 0; i < 1 << (planes - p - 1); i++)
                    candidates[i] = _mm512_mask_mov_ps(p == 0 ? levels[2 * i] : candidates[2 * i], mask,
                                                       p == 0 ? levels[2 * i + 1] : candidates[2 * i + 1]);
            }
            _mm512_storeu_ps(out + t * 32, candidates[0]);
        }
    } else if (kind == LAQ_PLANES_ONE_HOT) {
        const __m512 l0 = _mm512_loadu_ps(lv + lane);
        const __m512 l1 = planes > 0 ? _mm512_loadu_ps(lv + 64 + lane) : l0, l2 = planes > 1 ? _mm512_loadu_ps(lv + 128 + lane) : l0;
        for (long t = 0; t < k; t++) {
            __m512 v = l0;
            if (planes > 0) v = _mm512_mask_mov_ps(v, (__mmask16)(w[t * planes] >> lane), l1);
            if (planes > 1) v = _mm512_mask_mov_ps(v, (__mmask16)(w[t * planes + 1] >> lane), l2);
            _mm512_storeu_ps(out + t * 32, v);
        }
    } else {
        __m512 magnitudes[LAQ_MAX_PLANES];
#pragma clang loop unroll(full)
        for (int p = 1; p < planes; p++) magnitudes[p] = _mm512_loadu_ps(lv + p * 64 + lane);
        for (long t = 0; t < k; t++) {
            __m512 v = _mm512_setzero_ps();
#pragma clang loop unroll(full)
            for (int p = 1; p < planes; p++) v = _mm512_mask_mov_ps(v, (__mmask16)(w[t * planes + p] >> lane), magnitudes[p]);
            _mm512_storeu_ps(out + t * 32, _mm512_mask_sub_ps(v, (__mmask16)(w[t * planes] >> lane), _mm512_setzero_ps(), v));
        }
    }
}

__attribute__((target("avx512f,fma"))) static void decode_panel_avx512(const uint64_t *w, int planes, int kind, long k,
                                                                       const float *lv, int half, float *out) {
    for (int g = 0; g < 2; g++) {
        const int lane = 32 * half + 16 * g;
        float *dst = out + 16 * g;
#define LAQ_DECODE(p, kd) decode_lanes_avx512(w, p, kd, k, lv, lane, dst)
        if (kind == LAQ_PLANES_ONE_HOT) {
            if (planes == 0) LAQ_DECODE(0, LAQ_PLANES_ONE_HOT);
            else if (planes == 1) LAQ_DECODE(1, LAQ_PLANES_ONE_HOT);
            else LAQ_DECODE(2, LAQ_PLANES_ONE_HOT);
        } else {
            switch (planes) {
            case 1: if (kind == LAQ_PLANES_BITS) LAQ_DECODE(1, LAQ_PLANES_BITS); else LAQ_DECODE(1, LAQ_PLANES_SIGNED); break;
            case 2: if (kind == LAQ_PLANES_BITS) LAQ_DECODE(2, LAQ_PLANES_BITS); else LAQ_DECODE(2, LAQ_PLANES_SIGNED); break;
            case 3: if (kind == LAQ_PLANES_BITS) LAQ_DECODE(3, LAQ_PLANES_BITS); else LAQ_DECODE(3, LAQ_PLANES_SIGNED); break;
            default: if (kind == LAQ_PLANES_BITS) LAQ_DECODE(4, LAQ_PLANES_BITS); else LAQ_DECODE(4, LAQ_PLANES_SIGNED); break;
            }
        }
#undef LAQ_DECODE
    }
}
#endif

void laq_planes_decode_panel(const uint64_t *planes, int plane_count, int kind, long k, long n, const float *levels,
                             long panel, float *out, int isa) {
    const long block = panel / 2, codes = table_rows(plane_count, kind);
    const int half = (int)(panel % 2);
    const uint64_t *w = planes + block * k * plane_count;
    const float *lv = levels + block * codes * 64;
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        decode_panel_avx512(w, plane_count, kind, k, lv, half, out);
        return;
    }
    if (isa >= LAQ_ISA_AVX2) {
        decode_panel_avx2(w, plane_count, kind, k, lv, half, out);
        return;
    }
#endif
    (void)n;
    for (long t = 0; t < k; t++)
        for (int j = 0; j < 32; j++)
            out[laq_panel_offset(k, t, j, isa)] = level_at(w + t * plane_count, plane_count, kind, lv, 64, 32 * half + j);
}
