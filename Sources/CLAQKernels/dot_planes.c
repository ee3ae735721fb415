// Dot-plane kernels: plane-matrix products with int8 activations (layout in
// include/laq_kernels.h). Per plane, the plane bits become 0/1 bytes and a 4-way u8·s8 dot
// product adds the activations of the plane's rows into 32-bit sums (VPDPBUSD on AVX-512 VNNI,
// plain loops otherwise); the sums are exact, and one scalar combination turns them into
// outputs, so every instruction set gives the same bits.
#include "laq_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

int laq_int8_quantize(const float *x, long k, long k4, int8_t *q, float *scale, int32_t *total) {
    float largest = 0;
    for (long i = 0; i < k; i++) {
        if (!isfinite(x[i])) return 0;
        const float magnitude = fabsf(x[i]);
        if (magnitude > largest) largest = magnitude;
    }
    int32_t sum = 0;
    if (largest == 0) {
        memset(q, 0, (size_t)(4 * k4));
        *scale = 0;
    } else {
        const float s = largest / 127;
        for (long i = 0; i < k; i++) {
            long v = lrintf(x[i] / s);
            v = v > 127 ? 127 : v < -127 ? -127 : v;
            q[i] = (int8_t)v;
            sum += (int32_t)v;
        }
        memset(q + k, 0, (size_t)(4 * k4 - k));
        *scale = s;
    }
    *total = sum;
    return 1;
}

// sums[p·64 + n'] = Σ q over plane p's rows, for the 64 columns of one block.
static void sums_scalar(const int8_t *q, long k4, const uint64_t *w, int planes, int32_t *sums) {
    memset(sums, 0, sizeof(int32_t) * 64 * (size_t)planes);
    for (long g = 0; g < k4; g++) {
        const int8_t *x = q + 4 * g;
        for (int p = 0; p < planes; p++)
            for (int s = 0; s < 4; s++) {
                const uint64_t word = w[(g * planes + p) * 4 + s];
                if (!word) continue;
                for (int j = 0; j < 16; j++)
                    for (int i = 0; i < 4; i++)
                        if ((word >> (4 * j + i)) & 1) sums[p * 64 + 16 * s + j] += x[i];
            }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
sums_vnni_p(const int8_t *q, long k4, const uint64_t *w, const int planes, int32_t *sums) {
    __m512i acc[LAQ_MAX_PLANES][4];
    for (int p = 0; p < planes; p++)
        for (int s = 0; s < 4; s++) acc[p][s] = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1);
    for (long g = 0; g < k4; g++) {
        int32_t four;
        memcpy(&four, q + 4 * g, 4);
        const __m512i x = _mm512_set1_epi32(four);
        const uint64_t *word = w + g * planes * 4;
        for (int p = 0; p < planes; p++)
            for (int s = 0; s < 4; s++) {
                const __m512i bits = _mm512_maskz_mov_epi8(_load_mask64((__mmask64 *)(word + p * 4 + s)), ones);
                acc[p][s] = _mm512_dpbusd_epi32(acc[p][s], bits, x);
            }
    }
    for (int p = 0; p < planes; p++)
        for (int s = 0; s < 4; s++) _mm512_storeu_si512(sums + p * 64 + 16 * s, acc[p][s]);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void sums_vnni(const int8_t *q, long k4, const uint64_t *w,
                                                                          int planes, int32_t *sums) {
    switch (planes) {
    case 1: sums_vnni_p(q, k4, w, 1, sums); break;
    case 2: sums_vnni_p(q, k4, w, 2, sums); break;
    case 3: sums_vnni_p(q, k4, w, 3, sums); break;
    default: sums_vnni_p(q, k4, w, 4, sums); break;
    }
}
#endif

void laq_dot_planes_multiply(const int8_t *q, long k4, float scale, int32_t total, long n,
                             const uint64_t *planes, int plane_count, const float *sum_levels,
                             float *c, int accumulate, long block_begin, long block_end, int isa) {
    const float *levels = sum_levels;
    int32_t sums[LAQ_MAX_PLANES * 64] __attribute__((aligned(64)));
    for (long b = block_begin; b < block_end; b++) {
        const long first = 64 * b, width = n - first < 64 ? n - first : 64;
        const uint64_t *w = planes + b * k4 * plane_count * 4;
        if (plane_count > 0) {
#if defined(__x86_64__)
            if (isa >= LAQ_ISA_AVX512_VNNI) sums_vnni(q, k4, w, plane_count, sums);
            else
#endif
                sums_scalar(q, k4, w, plane_count, sums);
        }
        const float *lv = levels + b * (plane_count + 1) * 64;
        for (long j = 0; j < width; j++) {
            int32_t rest = total;
            float y = 0;
            for (int p = 0; p < plane_count; p++) {
                rest -= sums[p * 64 + j];
                y += lv[(p + 1) * 64 + j] * (float)sums[p * 64 + j];
            }
            y = scale * (lv[j] * (float)rest + y);
            c[first + j] = accumulate ? c[first + j] + y : y;
        }
    }
    (void)isa;
}

// Symmetric one-hot pairs: d[16·s + j] = Σ x over plane 0's rows − Σ x over plane 1's rows,
// for the 64 columns of one block.
static void signed_pair_scalar(const int8_t *q, long k4, const uint64_t *w, int32_t *d) {
    memset(d, 0, sizeof(int32_t) * 64);
    for (long g = 0; g < k4; g++) {
        const int8_t *x = q + 4 * g;
        for (int s = 0; s < 4; s++) {
            const uint64_t plus = w[(g * 2) * 4 + s], minus = w[(g * 2 + 1) * 4 + s];
            if (!(plus | minus)) continue;
            for (int j = 0; j < 16; j++)
                for (int i = 0; i < 4; i++) {
                    if ((plus >> (4 * j + i)) & 1) d[16 * s + j] += x[i];
                    if ((minus >> (4 * j + i)) & 1) d[16 * s + j] -= x[i];
                }
        }
    }
}

#if defined(__x86_64__)
// One u8·s8 dot product per word pair: the weights as +1/−1/0 bytes (movm gives −1 per set
// bit: minus − plus), the activations offset by 128 into u8 (x XOR 0x80 = x + 128), so the
// sums are d + 128·Σ_k w[k, n], corrected by the column sums of the weights.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void signed_pair_vnni(const int8_t *q, long k4, const uint64_t *w,
                                                                                  const int32_t *column_sums, int32_t *d) {
    __m512i acc[4];
    for (int s = 0; s < 4; s++) acc[s] = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (long g = 0; g < k4; g++) {
        int32_t four;
        memcpy(&four, q + 4 * g, 4);
        const __m512i x = _mm512_xor_si512(_mm512_set1_epi32(four), flip);
        const uint64_t *word = w + g * 8;
        for (int s = 0; s < 4; s++) {
            const __m512i v = _mm512_sub_epi8(_mm512_movm_epi8(_load_mask64((__mmask64 *)(word + 4 + s))),
                                              _mm512_movm_epi8(_load_mask64((__mmask64 *)(word + s))));
            acc[s] = _mm512_dpbusd_epi32(acc[s], x, v);
        }
    }
    for (int s = 0; s < 4; s++) {
        const __m512i sums = _mm512_loadu_si512(column_sums + 16 * s);
        _mm512_storeu_si512(d + 16 * s, _mm512_sub_epi32(acc[s], _mm512_slli_epi32(sums, 7)));
    }
}
#endif

void laq_dot_planes_multiply_signed_pair(const int8_t *q, long k4, float scale, long n, const uint64_t *planes,
                                         const float *levels, const int32_t *column_sums, float *c, int accumulate,
                                         long block_begin, long block_end, int isa) {
    int32_t d[64] __attribute__((aligned(64)));
    for (long b = block_begin; b < block_end; b++) {
        const long first = 64 * b, width = n - first < 64 ? n - first : 64;
        const uint64_t *w = planes + b * k4 * 2 * 4;
#if defined(__x86_64__)
        if (isa >= LAQ_ISA_AVX512_VNNI) signed_pair_vnni(q, k4, w, column_sums + first, d);
        else
#endif
            signed_pair_scalar(q, k4, w, d);
        const float *lv = levels + first;
        for (long j = 0; j < width; j++) {
            const float y = scale * (lv[j] * (float)d[j]);
            c[first + j] = accumulate ? c[first + j] + y : y;
        }
    }
    (void)isa;
}

void laq_dot_planes_decode(const uint64_t *planes, int plane_count, int one_hot, long k, long n, const float *levels,
                           long start, long count, float *out) {
    const long k4 = (k + 3) / 4, codes = one_hot ? plane_count + 1 : 1L << plane_count;  // no signed dot planes
    long row = n > 0 ? start / n : 0, column = n > 0 ? start % n : 0;
    for (long i = 0; i < count; i++) {
        const long b = column / 64, s = (column % 64) / 16, j = column % 16, g = row / 4, r = row % 4;
        int code = 0;
        for (int p = 0; p < plane_count; p++)
            if ((planes[((b * k4 + g) * plane_count + p) * 4 + s] >> (4 * j + r)) & 1) code = one_hot ? p + 1 : code | 1 << p;
        out[i] = levels[(b * codes + code) * 64 + column % 64];
        if (++column == n) { column = 0; row++; }
    }
}
