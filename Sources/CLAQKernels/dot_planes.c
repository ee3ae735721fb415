// Dot-plane kernels: plane-matrix products with int8 activations (layout in
// include/laq_kernels.h). Per plane, the plane bits become 0/1 bytes and a 4-way u8·s8 dot
// product adds the activations of the plane's rows into 32-bit sums (VPDPBUSD on AVX-512 VNNI;
// VPMADDUBSW, int16 sums and VPMADDWD on AVX2, or for one row tables of each group's subset
// sums; plain loops otherwise); the sums are exact, and one combination (the same operations, 8
// or 16 columns at a time on AVX2 and AVX-512) turns them into outputs, so every instruction set
// gives the same bits.
#include "epilogue.h"
#include "laq_kernels.h"
#include "lanes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The combinations are products and sums rounded one by one, never contracted into fused
// multiply-adds: every instruction set gives the scalar loops' bits.
#pragma clang fp contract(off)

// Where a combination's values y[j] (output column first + j, for j < width) go: out[j] = y, or
// out[j] + y where `accumulate`; with an epilogue (accumulate then 0), out[j] = its value of y,
// the residual's value at residual[j] (out's place in it, which may be out itself) read first.
typedef struct {
    float *out;
    int accumulate;
    const laq_epilogue *epilogue;
    const float *residual;
    long first;
} combined;

static inline combined to_output(float *out, int accumulate) {
    combined to = {out, accumulate, 0, 0, 0};
    return to;
}

// y = scale·(L₀[j]·(total − Σ_p S_p[j]) + Σ_p L_{p+1}[j]·S_p[j]) for j < width, S_p at sums +
// 64·p, L at lv (rows 64 apart). The AVX2 and AVX-512 forms do each column's operations in the
// scalar order, 8 or 16 columns at a time.
static void combine_planes(const int32_t *sums, int planes, int32_t total, float scale, const float *lv, combined to, long width, int isa);
// y = scale·(L[j]·D[j]) for j < width (symmetric ternary).
static void combine_pair(const int32_t *d, float scale, const float *levels, combined to, long width, int isa);
// y = scale·(offsets[j]·total + steps[j]·C[j]) for j < width (bit planes' code sums).
static void combine_codes(const int32_t *codes, float total, float scale, const float *offsets, const float *steps, combined to,
                          long width, int isa);

#if defined(__x86_64__)
__attribute__((target("avx512f"), always_inline)) static inline void store_combined(float *out, __mmask16 m, __m512 y, int accumulate) {
    if (accumulate) y = _mm512_add_ps(_mm512_maskz_loadu_ps(m, out), y);
    _mm512_mask_storeu_ps(out, m, y);
}

__attribute__((target("avx512f"))) static void combine_planes_avx512(const int32_t *sums, int planes, int32_t total, float scale,
                                                                    const float *lv, float *out, long width, int accumulate) {
    for (long j = 0; j < width; j += 16) {
        const __mmask16 m = laq_lanes(width - j);
        __m512i rest = _mm512_set1_epi32(total);
        __m512 y = _mm512_setzero_ps();
        for (int p = 0; p < planes; p++) {
            const __m512i s = _mm512_maskz_loadu_epi32(m, sums + p * 64 + j);
            rest = _mm512_sub_epi32(rest, s);
            y = _mm512_add_ps(y, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, lv + (p + 1) * 64 + j), _mm512_cvtepi32_ps(s)));
        }
        y = _mm512_mul_ps(_mm512_set1_ps(scale), _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, lv + j), _mm512_cvtepi32_ps(rest)), y));
        store_combined(out + j, m, y, accumulate);
    }
}

__attribute__((target("avx512f"))) static void combine_pair_avx512(const int32_t *d, float scale, const float *levels, float *out,
                                                                  long width, int accumulate) {
    for (long j = 0; j < width; j += 16) {
        const __mmask16 m = laq_lanes(width - j);
        const __m512 product = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, levels + j), _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, d + j)));
        store_combined(out + j, m, _mm512_mul_ps(_mm512_set1_ps(scale), product), accumulate);
    }
}

__attribute__((target("avx512f"))) static void combine_codes_avx512(const int32_t *codes, float total, float scale, const float *offsets,
                                                                   const float *steps, float *out, long width, int accumulate) {
    for (long j = 0; j < width; j += 16) {
        const __mmask16 m = laq_lanes(width - j);
        const __m512 sum = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, offsets + j), _mm512_set1_ps(total)),
                                         _mm512_mul_ps(_mm512_maskz_loadu_ps(m, steps + j), _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, codes + j))));
        store_combined(out + j, m, _mm512_mul_ps(_mm512_set1_ps(scale), sum), accumulate);
    }
}
#endif

#if defined(__x86_64__)
// The combinations 8 columns at a time, each column's operations in the scalar order. Sums and
// sum levels are whole blocks of 64; column levels, offsets, steps and the epilogue's arrays end
// at N, so the last vector's loads and stores are masked (plain where every lane is in use:
// VMASKMOVPS is slow on AMD's cores).
__attribute__((target("avx2,fma"), always_inline)) static inline void store_combined8(const combined *to, long j, __m256 y, __m256i m,
                                                                                    const int full) {
    float *out = to->out + j;
    if (to->epilogue) {
        const epilogue_columns8 c = epilogue_columns_avx2(to->epilogue, to->first + j, m, full);
        y = epilogue_apply_avx2(y, &c);
        if (to->residual) y = epilogue_residual_avx2(y, to->epilogue, &c, to->residual + j, m, full);
    } else if (to->accumulate) {
        y = _mm256_add_ps(LAQ_LOAD8(out, m, full), y);
    }
    LAQ_STORE8(out, m, y, full);
}

// body(j, m, full) for the vectors of 8 columns below width, the whole ones with full = 1.
#define LAQ_COLUMNS8(width, body)                                  \
    do {                                                           \
        long j = 0;                                                \
        const __m256i all = _mm256_set1_epi32(-1);                 \
        for (; j + 8 <= (width); j += 8) body(j, all, 1);          \
        if (j < (width)) body(j, laq_lanes8((width) - j), 0);      \
    } while (0)

__attribute__((target("avx2,fma"))) static void combine_planes_avx2(const int32_t *sums, int planes, int32_t total, float scale,
                                                                   const float *lv, const combined *to, long width) {
#define LAQ_PLANES8(j, m, full)                                                                                                     \
    do {                                                                                                                            \
        __m256i rest = _mm256_set1_epi32(total);                                                                                    \
        __m256 y = _mm256_setzero_ps();                                                                                             \
        for (int p = 0; p < planes; p++) {                                                                                          \
            const __m256i s = _mm256_loadu_si256((const __m256i *)(sums + p * 64 + (j)));                                           \
            rest = _mm256_sub_epi32(rest, s);                                                                                       \
            y = _mm256_add_ps(y, _mm256_mul_ps(_mm256_loadu_ps(lv + (p + 1) * 64 + (j)), _mm256_cvtepi32_ps(s)));                  \
        }                                                                                                                           \
        y = _mm256_mul_ps(_mm256_set1_ps(scale), _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(lv + (j)), _mm256_cvtepi32_ps(rest)), y)); \
        store_combined8(to, (j), y, (m), (full));                                                                                   \
    } while (0)
    LAQ_COLUMNS8(width, LAQ_PLANES8);
#undef LAQ_PLANES8
}

__attribute__((target("avx2,fma"))) static void combine_pair_avx2(const int32_t *d, float scale, const float *levels, const combined *to,
                                                                 long width) {
#define LAQ_PAIR8(j, m, full)                                                                                    \
    do {                                                                                                         \
        const __m256 d_ = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(d + (j))));                  \
        const __m256 y_ = _mm256_mul_ps(_mm256_set1_ps(scale), _mm256_mul_ps(LAQ_LOAD8(levels + (j), (m), (full)), d_)); \
        store_combined8(to, (j), y_, (m), (full));                                                               \
    } while (0)
    LAQ_COLUMNS8(width, LAQ_PAIR8);
#undef LAQ_PAIR8
}

__attribute__((target("avx2,fma"))) static void combine_codes_avx2(const int32_t *codes, float total, float scale, const float *offsets,
                                                                  const float *steps, const combined *to, long width) {
#define LAQ_CODES8(j, m, full)                                                                                                            \
    do {                                                                                                                                 \
        const __m256 sum = _mm256_add_ps(_mm256_mul_ps(LAQ_LOAD8(offsets + (j), (m), (full)), _mm256_set1_ps(total)),                    \
                                         _mm256_mul_ps(LAQ_LOAD8(steps + (j), (m), (full)),                                              \
                                                       _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(codes + (j))))));         \
        store_combined8(to, (j), _mm256_mul_ps(_mm256_set1_ps(scale), sum), (m), (full));                                                \
    } while (0)
    LAQ_COLUMNS8(width, LAQ_CODES8);
#undef LAQ_CODES8
}
#undef LAQ_COLUMNS8
#endif

#if defined(__x86_64__)
// out = the epilogue of v (16 columns from first, the lanes of m), the residual read first.
__attribute__((target("avx512f"))) static void epilogue_store_avx512(const laq_epilogue *e, const float *v, float *out,
                                                                    const float *residual, long first, __mmask16 m) {
    __m512 y = epilogue_avx512(_mm512_maskz_loadu_ps(m, v), e, first, m);
    if (residual) {
        const epilogue_columns c = epilogue_columns_avx512(e, first, m);
        y = epilogue_residual_avx512(y, e, &c, residual, m);
    }
    _mm512_mask_storeu_ps(out, m, y);
}
#endif

// y[j] for j < width to its place: scalar code, or (AVX-512) after one of the plain
// combinations into y.
static void store_values(const combined *to, const float *y, long width, int isa) {
    const laq_epilogue *e = to->epilogue;
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512 && e) {
        for (long j = 0; j < width; j += 16) {
            const __mmask16 m = laq_lanes(width - j);
            epilogue_store_avx512(e, y + j, to->out + j, to->residual ? to->residual + j : 0, to->first + j, m);
        }
        return;
    }
#endif
    (void)isa;
    for (long j = 0; j < width; j++) {
        if (!e) {
            to->out[j] = to->accumulate ? to->out[j] + y[j] : y[j];
            continue;
        }
        const float v = epilogue_scalar(y[j], e, to->first + j);
        to->out[j] = to->residual ? epilogue_residual_scalar(v, e, to->residual[j]) : v;
    }
}

#if defined(__x86_64__)
// The AVX-512 combinations write plain values: into C (`out`, added to it where `accumulate`),
// or where there is an epilogue into `y`, which store_values then takes through it.
static inline float *plain_target(const combined *to, float *y) { return to->epilogue ? y : to->out; }
static inline int plain_accumulates(const combined *to) { return to->epilogue ? 0 : to->accumulate; }
#endif

static void combine_planes(const int32_t *sums, int planes, int32_t total, float scale, const float *lv, combined to, long width, int isa) {
    float y[64] __attribute__((aligned(64)));
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        combine_planes_avx512(sums, planes, total, scale, lv, plain_target(&to, y), width, plain_accumulates(&to));
        if (to.epilogue) store_values(&to, y, width, isa);
        return;
    }
    if (isa >= LAQ_ISA_AVX2) {
        combine_planes_avx2(sums, planes, total, scale, lv, &to, width);
        return;
    }
#endif
    for (long j = 0; j < width; j++) {
        int32_t rest = total;
        float v = 0;
        for (int p = 0; p < planes; p++) {
            rest -= sums[p * 64 + j];
            v += lv[(p + 1) * 64 + j] * (float)sums[p * 64 + j];
        }
        y[j] = scale * (lv[j] * (float)rest + v);
    }
    store_values(&to, y, width, isa);
}

static void combine_pair(const int32_t *d, float scale, const float *levels, combined to, long width, int isa) {
    float y[64] __attribute__((aligned(64)));
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        combine_pair_avx512(d, scale, levels, plain_target(&to, y), width, plain_accumulates(&to));
        if (to.epilogue) store_values(&to, y, width, isa);
        return;
    }
    if (isa >= LAQ_ISA_AVX2) {
        combine_pair_avx2(d, scale, levels, &to, width);
        return;
    }
#endif
    for (long j = 0; j < width; j++) y[j] = scale * (levels[j] * (float)d[j]);
    store_values(&to, y, width, isa);
}

static void combine_codes(const int32_t *codes, float total, float scale, const float *offsets, const float *steps, combined to,
                          long width, int isa) {
    float y[64] __attribute__((aligned(64)));
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        combine_codes_avx512(codes, total, scale, offsets, steps, plain_target(&to, y), width, plain_accumulates(&to));
        if (to.epilogue) store_values(&to, y, width, isa);
        return;
    }
    if (isa >= LAQ_ISA_AVX2) {
        combine_codes_avx2(codes, total, scale, offsets, steps, &to, width);
        return;
    }
#endif
    for (long j = 0; j < width; j++) y[j] = scale * (offsets[j] * total + steps[j] * (float)codes[j]);
    store_values(&to, y, width, isa);
}

#if defined(__x86_64__)
// The scalar definition below, 16 values at a time: the same maximum, the same IEEE divisions,
// and the conversion rounds to nearest even as lrintf does in the default rounding mode, so q,
// scale and total are the same bits.
__attribute__((target("avx512f"))) static int int8_quantize_avx512(const float *x, long k, long k4, int8_t *q,
                                                                                       float *scale, int32_t *total) {
    __m512 largest = _mm512_setzero_ps();
    __mmask16 bad = 0;
    const __m512i exponent = _mm512_set1_epi32(0x7F800000);
    for (long i = 0; i < k; i += 16) {
        const __mmask16 mask = laq_lanes(k - i);
        const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
        // A NaN or an infinity: every exponent bit set.
        bad |= _mm512_mask_cmpeq_epi32_mask(mask, _mm512_and_epi32(_mm512_castps_si512(v), exponent), exponent);
        largest = _mm512_max_ps(largest, _mm512_abs_ps(v));
    }
    if (bad) return 0;
    const float top = _mm512_reduce_max_ps(largest);
    if (top == 0) {
        memset(q, 0, (size_t)(4 * k4));
        *scale = 0;
        *total = 0;
        return 1;
    }
    const float s = top / 127;
    const __m512 divisor = _mm512_set1_ps(s);
    const __m512i low = _mm512_set1_epi32(-127), high = _mm512_set1_epi32(127);
    __m512i sum = _mm512_setzero_si512();
    for (long i = 0; i < k; i += 16) {
        const __mmask16 mask = laq_lanes(k - i);
        const __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(mask, x + i), divisor);
        const __m512i r = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(v), low), high);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, mask, r);
        sum = _mm512_mask_add_epi32(sum, mask, sum, r);
    }
    memset(q + k, 0, (size_t)(4 * k4 - k));
    *scale = s;
    *total = _mm512_reduce_add_epi32(sum);
    return 1;
}
#endif

#if defined(__x86_64__)
// The same definition 8 values at a time, the tail of fewer than 8 in the scalar code's
// operations: the same maximum, IEEE divisions and rounding to nearest even (VCVTPS2DQ in the
// default mode, as lrintf), so q, scale and total are the same bits.
__attribute__((target("avx2,fma"))) static int int8_quantize_avx2(const float *x, long k, long k4, int8_t *q, float *scale,
                                                                 int32_t *total) {
    const long whole = k / 8 * 8;
    const __m256i exponent = _mm256_set1_epi32(0x7F800000);
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 largest = _mm256_setzero_ps();
    __m256i bad = _mm256_setzero_si256();
    for (long i = 0; i < whole; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        // A NaN or an infinity: every exponent bit set.
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), exponent), exponent));
        largest = _mm256_max_ps(largest, _mm256_and_ps(v, magnitude));
    }
    if (!_mm256_testz_si256(bad, bad)) return 0;
    float lanes[8], top = 0;
    _mm256_storeu_ps(lanes, largest);
    for (int i = 0; i < 8; i++) top = lanes[i] > top ? lanes[i] : top;
    for (long i = whole; i < k; i++) {
        if (!isfinite(x[i])) return 0;
        top = fabsf(x[i]) > top ? fabsf(x[i]) : top;
    }
    if (top == 0) {
        memset(q, 0, (size_t)(4 * k4));
        *scale = 0;
        *total = 0;
        return 1;
    }
    const float s = top / 127;
    const __m256 divisor = _mm256_set1_ps(s);
    const __m256i low = _mm256_set1_epi32(-127), high = _mm256_set1_epi32(127);
    __m256i sum = _mm256_setzero_si256();
    for (long i = 0; i < whole; i += 8) {
        const __m256i r = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_div_ps(_mm256_loadu_ps(x + i), divisor)), low), high);
        sum = _mm256_add_epi32(sum, r);
        // int32 → int16 → int8 (each step in range); each 128-bit lane's low 4 bytes are its values.
        const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(r, r), _mm256_setzero_si256());
        const int32_t first = _mm256_extract_epi32(packed, 0), second = _mm256_extract_epi32(packed, 4);
        memcpy(q + i, &first, 4);
        memcpy(q + i + 4, &second, 4);
    }
    int32_t sums[8], result = 0;
    _mm256_storeu_si256((__m256i *)sums, sum);
    for (int i = 0; i < 8; i++) result += sums[i];
    for (long i = whole; i < k; i++) {
        long v = lrintf(x[i] / s);
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        q[i] = (int8_t)v;
        result += (int32_t)v;
    }
    memset(q + k, 0, (size_t)(4 * k4 - k));
    *scale = s;
    *total = result;
    return 1;
}
#endif

int laq_int8_quantize(const float *x, long k, long k4, int8_t *q, float *scale, int32_t *total, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) return int8_quantize_avx512(x, k, k4, q, scale, total);
    if (isa >= LAQ_ISA_AVX2) return int8_quantize_avx2(x, k, k4, q, scale, total);
#endif
    (void)isa;
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
// One group of 4 rows: each plane's bits as 0/1 bytes, one dot product per word and plane.
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
sums_group(const int8_t *q, long g, const uint64_t *w, const int planes, __m512i ones, __m512i *acc) {
    int32_t four;
    memcpy(&four, q + 4 * g, 4);
    const __m512i x = _mm512_set1_epi32(four);
    const uint64_t *word = w + g * planes * 4;
    for (int p = 0; p < planes; p++)
        for (int s = 0; s < 4; s++) {
            const __m512i bits = _mm512_maskz_mov_epi8(_load_mask64((__mmask64 *)(word + p * 4 + s)), ones);
            acc[p * 4 + s] = _mm512_dpbusd_epi32(acc[p * 4 + s], bits, x);
        }
}

// 16 / (4·P) groups in flight (4 for one plane, 2 for two), each with its own accumulators, so
// that the chains of dot products overlap (three and four planes already have 12–16 chains):
// one chain waits on each VPDPBUSD's latency (docs/PERFORMANCE.md, "Kernel tuning").
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
sums_vnni_p(const int8_t *q, long k4, const uint64_t *w, const int planes, int32_t *sums) {
    enum { most = 4 };
    const int unroll = planes >= 3 ? 1 : 4 / planes;
    __m512i acc[most][LAQ_MAX_PLANES * 4];
    for (int u = 0; u < unroll; u++)
        for (int i = 0; i < planes * 4; i++) acc[u][i] = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1);
    long g = 0;
    for (; g + unroll <= k4; g += unroll)
        for (int u = 0; u < unroll; u++) sums_group(q, g + u, w, planes, ones, acc[u]);
    for (; g < k4; g++) sums_group(q, g, w, planes, ones, acc[0]);
    for (int i = 0; i < planes * 4; i++) {
        __m512i total = acc[0][i];
        for (int u = 1; u < unroll; u++) total = _mm512_add_epi32(total, acc[u][i]);
        _mm512_storeu_si512(sums + (i / 4) * 64 + 16 * (i % 4), total);
    }
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

#if defined(__x86_64__)
// AVX2 without VNNI. VPMADDUBSW multiplies unsigned weight bytes (0/1 plane bits, w + 1 ∈ {0, 1,
// 2} for a symmetric ternary pair, or codes up to 2^P − 1) by the int8 activations and adds
// adjacent products into int16 lanes. Those lanes add up in int16 over as many groups of 4 rows
// as cannot overflow (each lane gains at most 2·127·b, b the largest byte), then VPMADDWD by
// ones widens each pair of lanes into an int32 column sum. Every step is exact, so the sums are
// the scalar kernels' and the combinations give the same bits. A 256-bit register holds half a
// word: bits 32h … 32h + 31 of sub-block s, columns 16s + 8h … 16s + 8h + 7, each int32 lane
// one column's 4 rows.
#define LAQ_DOT_AVX2 __attribute__((target("avx2,fma")))

// What the weight bytes of one group are: one 0/1 vector per plane (plane sums), w + 1 of a
// word pair (symmetric ternary), or each weight's code (bit planes).
enum { DOT_SUMS, DOT_PAIR, DOT_CODES };

// Groups of 4 rows whose int16 lanes cannot overflow with bytes up to b: g·2·127·b ≤ 32767.
// (No bytes at all, b = 0: any run.)
static inline long int16_groups(int b) { return b > 0 ? 32767 / (254 * b) : 129; }

// Half h of a word as bytes: byte 4j + i holds bit 4j + i of the half in place (1 << (i + 4j
// mod 8)) or 0. VPSHUFB spreads byte ⌊t/8⌋ of the half to bytes t (each 128-bit lane holds the
// four bytes of the broadcast), and the AND keeps bit t mod 8 of each.
LAQ_DOT_AVX2 __attribute__((always_inline)) static inline __m256i half_word_bits(const uint64_t *word, int h) {
    int32_t bits;
    memcpy(&bits, (const char *)word + 4 * h, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    return _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(bits), spread),
                            _mm256_set1_epi64x((long long)0x8040201008040201ull));
}

// The same as 0/1 bytes.
LAQ_DOT_AVX2 __attribute__((always_inline)) static inline __m256i half_word_ones(const uint64_t *word, int h) {
    return _mm256_min_epu8(half_word_bits(word, h), _mm256_set1_epi8(1));
}

// Rows [0, R) of A against sub-block s, half h of one block, for groups [g0, g1): the int16
// lanes of each row and weight vector, widened and stored (g0 = 0) or added into
// out[(r·V + v)·64 + 16s + 8h …].
// R, P and the kind are constants where this is inlined, so the R·V accumulators (at most 12)
// stay in registers; a group's weight bytes are made once and serve every row.
LAQ_DOT_AVX2 __attribute__((always_inline)) static inline void
dot_half_avx2(const int8_t *q, long stride, long g0, long g1, const uint64_t *w, const int kind, const int planes, const int rows,
              int s, int h, int32_t *out) {
    const int vectors = kind == DOT_SUMS ? planes : 1, words = kind == DOT_PAIR ? 2 : planes;
    __m256i acc[12];
#pragma clang loop unroll(full)
    for (int i = 0; i < rows * vectors; i++) acc[i] = _mm256_setzero_si256();
    for (long g = g0; g < g1; g++) {
        const uint64_t *word = w + g * words * 4 + s;
        __m256i bytes[LAQ_MAX_PLANES];
        if (kind == DOT_SUMS) {
#pragma clang loop unroll(full)
            for (int p = 0; p < planes; p++) bytes[p] = half_word_ones(word + 4 * p, h);
        } else if (kind == DOT_PAIR) {
            // One-hot planes never overlap: 1 + plus − minus.
            bytes[0] = _mm256_sub_epi8(_mm256_add_epi8(_mm256_set1_epi8(1), half_word_ones(word, h)), half_word_ones(word + 4, h));
        } else {
            // Σ_p 2^p·bit_p by Horner's rule, from the top plane down.
            __m256i code = half_word_ones(word + 4 * (planes - 1), h);
            for (int p = planes - 2; p >= 0; p--) code = _mm256_add_epi8(_mm256_add_epi8(code, code), half_word_ones(word + 4 * p, h));
            bytes[0] = code;
        }
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) {
            int32_t four;
            memcpy(&four, q + r * stride + 4 * g, 4);
            const __m256i x = _mm256_set1_epi32(four);
#pragma clang loop unroll(full)
            for (int v = 0; v < vectors; v++)
                acc[r * vectors + v] = _mm256_add_epi16(acc[r * vectors + v], _mm256_maddubs_epi16(bytes[v], x));
        }
    }
    const __m256i ones = _mm256_set1_epi16(1);
#pragma clang loop unroll(full)
    for (int i = 0; i < rows * vectors; i++) {
        __m256i *sum = (__m256i *)(out + i * 64 + 16 * s + 8 * h), wide = _mm256_madd_epi16(acc[i], ones);
        _mm256_storeu_si256(sum, g0 == 0 ? wide : _mm256_add_epi32(_mm256_loadu_si256(sum), wide));
    }
}

// The first `width` columns of one block of 64 for rows [0, R): out[(r·V + v)·64 + n'] = the
// exact int32 sum of row r with weight vector v (plane sums S_p, Σ (w + 1)·q, or the code sums
// C), for n' below width rounded up to 8 (the rest untouched).
LAQ_DOT_AVX2 __attribute__((always_inline)) static inline void
dot_block_avx2_r(const int8_t *q, long stride, long k4, const uint64_t *w, const int kind, const int planes, const int rows,
                 long width, int32_t *out) {
    const int vectors = kind == DOT_SUMS ? planes : 1;
    const int most = kind == DOT_SUMS ? 1 : kind == DOT_PAIR ? 2 : (1 << planes) - 1;
    const long chunk = int16_groups(most);
    if (k4 <= 0) {
        memset(out, 0, sizeof(int32_t) * 64 * (size_t)(rows * vectors));
        return;
    }
    for (int s = 0; s < 4; s++)
        for (int h = 0; h < 2 && 16 * s + 8 * h < width; h++)
            for (long g0 = 0; g0 < k4; g0 += chunk)
                dot_half_avx2(q, stride, g0, g0 + chunk < k4 ? g0 + chunk : k4, w, kind, planes, rows, s, h, out);
}

// The most rows a tile takes: R·V ≤ 12 accumulators (plane sums 12/P rows; pairs and codes 12).
static int tile_rows_avx2(int kind, int planes) { return kind == DOT_SUMS && planes > 1 ? 12 / planes : 12; }

// dot_block_avx2_r with R, P and the kind constants (R at most tile_rows_avx2).
LAQ_DOT_AVX2 static void dot_block_avx2(const int8_t *q, long stride, long k4, const uint64_t *w, int kind, int planes, int rows,
                                        long width, int32_t *out) {
#define LAQ_AVX2_CASE(K, P, R) \
    case R: dot_block_avx2_r(q, stride, k4, w, K, P, R, width, out); return;
#define LAQ_AVX2_3(K, P) LAQ_AVX2_CASE(K, P, 1) LAQ_AVX2_CASE(K, P, 2) LAQ_AVX2_CASE(K, P, 3)
#define LAQ_AVX2_4(K, P) LAQ_AVX2_3(K, P) LAQ_AVX2_CASE(K, P, 4)
#define LAQ_AVX2_6(K, P) LAQ_AVX2_4(K, P) LAQ_AVX2_CASE(K, P, 5) LAQ_AVX2_CASE(K, P, 6)
#define LAQ_AVX2_12(K, P) LAQ_AVX2_6(K, P) LAQ_AVX2_CASE(K, P, 7) LAQ_AVX2_CASE(K, P, 8) LAQ_AVX2_CASE(K, P, 9) \
    LAQ_AVX2_CASE(K, P, 10) LAQ_AVX2_CASE(K, P, 11) LAQ_AVX2_CASE(K, P, 12)
    if (kind == DOT_PAIR) {
        switch (rows) { LAQ_AVX2_12(DOT_PAIR, 2) default: break; }
    } else if (kind == DOT_CODES) {
        // P stays a variable: one code vector whatever P, and the Horner loop is short.
        switch (rows) { LAQ_AVX2_12(DOT_CODES, planes) default: break; }
    } else {
        switch (planes) {
        case 1: switch (rows) { LAQ_AVX2_12(DOT_SUMS, 1) default: break; } break;
        case 2: switch (rows) { LAQ_AVX2_6(DOT_SUMS, 2) default: break; } break;
        case 3: switch (rows) { LAQ_AVX2_4(DOT_SUMS, 3) default: break; } break;
        default: switch (rows) { LAQ_AVX2_3(DOT_SUMS, 4) default: break; } break;
        }
    }
#undef LAQ_AVX2_CASE
#undef LAQ_AVX2_3
#undef LAQ_AVX2_4
#undef LAQ_AVX2_6
#undef LAQ_AVX2_12
    // Not reached: callers keep to tile_rows_avx2.
    for (int r = 0; r < rows; r++)
        dot_block_avx2_r(q + r * stride, stride, k4, w, kind, planes, 1, width, out + r * (kind == DOT_SUMS ? planes : 1) * 64);
}
#endif

#if defined(__x86_64__)
// One row on AVX2: lookup tables. A plane word's nibble j holds column j's bits for the 4 rows
// of its group, so Σ_i bit_i·q[4g + i] is entry `nibble` of the group's table of the 16 sums of
// its activations' subsets (T-MAC's and bitnet.cpp's tables). The entries (|t| ≤ 4·127) are
// int16, kept as 16 low bytes and 16 high bytes, each broadcast to both lanes for VPSHUFB's
// 16-entry lookups: a group's 32 bytes of a plane (its 4 words: 64 columns) take two nibble
// masks, four lookups, four byte interleaves and four int16 adds, where the byte products spent
// a shuffle, an AND and a minimum per 32 weights on the bits alone. Two planes share a pass over
// the groups and so each load of a group's table. The int16 lanes add up for 64 groups
// (64·508 < 2¹⁵), then widen into int32 sums: exact, as the other kernels' sums.
#define LAQ_TABLE_BYTES LAQ_INT8_TABLE_BYTES
// Groups whose tables a call keeps on its stack (at most 16 KiB); more come from the heap.
#define LAQ_STACK_TABLES 512
// The bytes of a call's stack array for its tables: none unless it looks up, and k4 ≤ 512.
#define LAQ_TABLE_STACK(lookup, k4) ((lookup) && (k4) <= LAQ_STACK_TABLES ? (k4) * LAQ_TABLE_BYTES + 1 : 1)

// The table of each group of 4 activations: bytes 0–15 the low bytes of its 16 sums (entry n =
// Σ_{i: bit i of n} q[4g + i]), 16–31 their high bytes.
__attribute__((target("avx2,fma"))) static void lut_tables_avx2(const int8_t *q, long k4, uint8_t *tables) {
    const __m256i entry = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Bytes 0–7 of each lane: the low bytes of its 8 entries; 8–15: the high bytes.
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                           0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    __m256i has[4];
    for (int i = 0; i < 4; i++) {
        const __m256i bit = _mm256_set1_epi16((short)(1 << i));
        has[i] = _mm256_cmpeq_epi16(_mm256_and_si256(entry, bit), bit);
    }
    for (long g = 0; g < k4; g++) {
        __m256i t = _mm256_setzero_si256();
        for (int i = 0; i < 4; i++) t = _mm256_add_epi16(t, _mm256_and_si256(has[i], _mm256_set1_epi16(q[4 * g + i])));
        // Quadwords: low bytes of entries 0–7, their high bytes, low bytes of 8–15, high bytes;
        // stored as low 0–7, low 8–15, high 0–7, high 8–15.
        const __m256i bytes = _mm256_shuffle_epi8(t, split);
        _mm256_storeu_si256((__m256i *)(tables + g * LAQ_TABLE_BYTES), _mm256_permute4x64_epi64(bytes, 0xD8));
    }
}

// One group's lookups for one plane: its word quad at `w` (64 columns), tables tl/th (low and
// high bytes), added into the int16 lanes acc[0..3] (acc[h] the even columns of bytes 0–7 (h =
// 0) or 8–15 (h = 1) of each lane, acc[2 + h] the odd ones).
#define LUT_LOOKUP(w, acc)                                                                                             \
    do {                                                                                                               \
        const __m256i v_ = _mm256_loadu_si256((const __m256i *)(w));                                                   \
        const __m256i low_ = _mm256_and_si256(v_, nibble), high_ = _mm256_and_si256(_mm256_srli_epi16(v_, 4), nibble); \
        const __m256i el_ = _mm256_shuffle_epi8(tl, low_), eh_ = _mm256_shuffle_epi8(th, low_);                        \
        const __m256i ol_ = _mm256_shuffle_epi8(tl, high_), oh_ = _mm256_shuffle_epi8(th, high_);                      \
        (acc)[0] = _mm256_add_epi16((acc)[0], _mm256_unpacklo_epi8(el_, eh_));                                         \
        (acc)[1] = _mm256_add_epi16((acc)[1], _mm256_unpackhi_epi8(el_, eh_));                                         \
        (acc)[2] = _mm256_add_epi16((acc)[2], _mm256_unpacklo_epi8(ol_, oh_));                                         \
        (acc)[3] = _mm256_add_epi16((acc)[3], _mm256_unpackhi_epi8(ol_, oh_));                                         \
    } while (0)

// Widens int16 lanes acc[0..3] into int32 `wide` (64 values, in the lanes' order).
__attribute__((target("avx2,fma"))) static inline void lut_widen(const __m256i acc[4], int32_t *wide) {
    for (int v = 0; v < 4; v++) {
        __m256i *to = (__m256i *)(wide + 16 * v);
        _mm256_store_si256(to, _mm256_add_epi32(_mm256_load_si256(to), _mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[v]))));
        _mm256_store_si256(to + 1, _mm256_add_epi32(_mm256_load_si256(to + 1), _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[v], 1))));
    }
}

// s[n'] = the sums of `wide` in column order: element e of vector v (wide[16v + e]) is lane e/8,
// byte k = e mod 8 of word s (lane 0: s = h, lane 1: s = h + 2, h = v mod 2), column 16s + 2k
// (+ 1 for the odd columns, v ≥ 2).
static inline void lut_unpermute(const int32_t *wide, int32_t *s) {
    for (int v = 0; v < 4; v++)
        for (int e = 0; e < 16; e++) {
            const int h = v & 1, parity = v >> 1, sub = (e >> 3) * 2 + h;
            s[16 * sub + 2 * (e & 7) + parity] = wide[16 * v + e];
        }
}

// The sums of plane p, and of plane p + 1 with `two`, of one block (`words` words a group) at
// s[0..63] and s[64..127]. `two` is a constant where this is inlined.
__attribute__((target("avx2,fma"), always_inline)) static inline void lut_pass_avx2(const uint8_t *tables, long k4, const uint64_t *w, int p,
                                                                                   int two, int words, int32_t *s) {
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    int32_t wide[2][64] __attribute__((aligned(32))) = {{0}};
    for (long g0 = 0; g0 < k4; g0 += 64) {
        const long g1 = g0 + 64 < k4 ? g0 + 64 : k4;
        __m256i a[4], b[4];
        for (int v = 0; v < 4; v++) a[v] = b[v] = _mm256_setzero_si256();
        for (long g = g0; g < g1; g++) {
            const __m256i tl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(tables + g * LAQ_TABLE_BYTES)));
            const __m256i th = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(tables + g * LAQ_TABLE_BYTES + 16)));
            const uint64_t *at = w + (g * words + p) * 4;
            LUT_LOOKUP(at, a);
            if (two) LUT_LOOKUP(at + 4, b);
        }
        lut_widen(a, wide[0]);
        if (two) lut_widen(b, wide[1]);
    }
    lut_unpermute(wide[0], s);
    if (two) lut_unpermute(wide[1], s + 64);
}
#undef LUT_LOOKUP

// sums[p·64 + n'] = S_p for the 64 columns of one block (P = `planes` planes, `words` words a
// group: P, or 2 for a ternary pair), from the row's tables: planes two at a time.
__attribute__((target("avx2,fma"))) static void lut_block_avx2(const uint8_t *tables, long k4, const uint64_t *w, int planes, int words,
                                                              int32_t *sums) {
    int p = 0;
    for (; p + 2 <= planes; p += 2) lut_pass_avx2(tables, k4, w, p, 1, words, sums + p * 64);
    if (p < planes) lut_pass_avx2(tables, k4, w, p, 0, words, sums + p * 64);
}

// A row's tables for `k4` groups where a kernel looks its sums up (`lookup`): the caller's
// (`given`, from laq_int8_tables: built once for all the threads of a product), else built here
// on `stack` up to LAQ_STACK_TABLES groups, beyond that on the heap (`heap`, freed by the
// kernel). bytes NULL: no tables (or no memory), and the kernel takes the byte products.
typedef struct {
    const uint8_t *bytes;
    uint8_t *heap;
} lut_tables;

static lut_tables row_tables(const int8_t *q, long k4, const uint8_t *given, int lookup, uint8_t *stack) {
    lut_tables t = {0, 0};
    if (!lookup) return t;
    if (given) {
        t.bytes = given;
        return t;
    }
    uint8_t *bytes = stack;
    if (k4 > LAQ_STACK_TABLES) bytes = t.heap = malloc((size_t)k4 * LAQ_TABLE_BYTES);
    if (bytes) lut_tables_avx2(q, k4, bytes);
    t.bytes = bytes;
    return t;
}

// One row's sums for one block from its tables: the plane sums at sums[p·64 + n'], or with
// `pair` the symmetric ternary D = S₀ − S₁ at sums[n'] (as tile_sums lays them out).
__attribute__((target("avx2,fma"))) static void lut_row_sums(const uint8_t *tables, long k4, const uint64_t *w, int pair, int planes,
                                                            int32_t *sums) {
    if (!pair) {
        lut_block_avx2(tables, k4, w, planes, planes, sums);
        return;
    }
    int32_t both[2 * 64] __attribute__((aligned(64)));
    lut_block_avx2(tables, k4, w, 2, 2, both);
    for (int j = 0; j < 64; j++) sums[j] = both[j] - both[64 + j];
}
#endif

long laq_int8_table_bytes(long k4, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX2 && isa < LAQ_ISA_AVX512_VNNI) return k4 * LAQ_TABLE_BYTES;
#endif
    (void)k4, (void)isa;
    return 0;
}

void laq_int8_tables(const int8_t *q, long k4, uint8_t *tables, int isa) {
#if defined(__x86_64__)
    if (laq_int8_table_bytes(k4, isa) > 0) lut_tables_avx2(q, k4, tables);
#endif
    (void)q, (void)k4, (void)tables, (void)isa;
}

void laq_dot_planes_multiply(const int8_t *q, long k4, float scale, int32_t total, long n,
                             const uint64_t *planes, int plane_count, const float *sum_levels,
                             float *c, int accumulate, const uint8_t *tables_given, long block_begin, long block_end, int isa) {
    const float *levels = sum_levels;
    int32_t sums[LAQ_MAX_PLANES * 64] __attribute__((aligned(64)));
#if defined(__x86_64__)
    const int lookup = isa >= LAQ_ISA_AVX2 && isa < LAQ_ISA_AVX512_VNNI && plane_count > 0;
    uint8_t stack[LAQ_TABLE_STACK(lookup && !tables_given, k4)] __attribute__((aligned(64)));
    const lut_tables tables = row_tables(q, k4, tables_given, lookup, stack);
#endif
    for (long b = block_begin; b < block_end; b++) {
        const long first = 64 * b, width = n - first < 64 ? n - first : 64;
        const uint64_t *w = planes + b * k4 * plane_count * 4;
        if (plane_count > 0) {
#if defined(__x86_64__)
            if (isa >= LAQ_ISA_AVX512_VNNI) sums_vnni(q, k4, w, plane_count, sums);
            else if (tables.bytes) lut_block_avx2(tables.bytes, k4, w, plane_count, plane_count, sums);
            else if (isa >= LAQ_ISA_AVX2) dot_block_avx2(q, 0, k4, w, DOT_SUMS, plane_count, 1, width, sums);
            else
#endif
                sums_scalar(q, k4, w, plane_count, sums);
        }
        combine_planes(sums, plane_count, total, scale, levels + b * (plane_count + 1) * 64, to_output(c + first, accumulate), width, isa);
    }
#if defined(__x86_64__)
    free(tables.heap);
#endif
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void signed_pair_vnni(const int8_t *q, long k4, const uint64_t *w,
                                                                                int32_t *d);
#endif

// Several rows at once: the plane bits of one sub-block (16 columns) become bytes once per
// group of 4 rows of W and serve R rows of A, R·P accumulators in registers (R·P ≤ 24).
// sums[(r·P + p)·64 + n'] = Σ q_r over plane p's rows, for the 64 columns of one block.
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
rows_vnni_rp(const int8_t *q, long stride, long k4, const uint64_t *w, const int rows, const int planes, int32_t *sums) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (int s = 0; s < 4; s++) {
        // Fully unrolled (rows and planes are constants here): the accumulators stay in registers.
        __m512i acc[24];
#pragma clang loop unroll(full)
        for (int i = 0; i < rows * planes; i++) acc[i] = _mm512_setzero_si512();
        for (long g = 0; g < k4; g++) {
            const uint64_t *word = w + g * planes * 4 + s;
            __m512i bits[LAQ_MAX_PLANES];
#pragma clang loop unroll(full)
            for (int p = 0; p < planes; p++) bits[p] = _mm512_maskz_mov_epi8(_load_mask64((__mmask64 *)(word + p * 4)), ones);
#pragma clang loop unroll(full)
            for (int r = 0; r < rows; r++) {
                int32_t four;
                memcpy(&four, q + r * stride + 4 * g, 4);
                const __m512i x = _mm512_set1_epi32(four);
#pragma clang loop unroll(full)
                for (int p = 0; p < planes; p++) acc[r * planes + p] = _mm512_dpbusd_epi32(acc[r * planes + p], bits[p], x);
            }
        }
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++)
#pragma clang loop unroll(full)
            for (int p = 0; p < planes; p++) _mm512_storeu_si512(sums + (r * planes + p) * 64 + 16 * s, acc[r * planes + p]);
    }
}

// R rows per tile for P planes (R·P ≤ 24), each (R, P) pair compiled with constant bounds, so
// that a partial tile keeps one expansion per word for all its rows.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void rows_vnni(const int8_t *q, long stride, long k4,
                                                                         const uint64_t *w, int rows, int planes, int32_t *sums) {
#define LAQ_ROWS_CASE(P, R) \
    case R: rows_vnni_rp(q, stride, k4, w, R, P, sums); return;
#define LAQ_ROWS_6(P) LAQ_ROWS_CASE(P, 1) LAQ_ROWS_CASE(P, 2) LAQ_ROWS_CASE(P, 3) LAQ_ROWS_CASE(P, 4) LAQ_ROWS_CASE(P, 5) LAQ_ROWS_CASE(P, 6)
#define LAQ_ROWS_8(P) LAQ_ROWS_6(P) LAQ_ROWS_CASE(P, 7) LAQ_ROWS_CASE(P, 8)
#define LAQ_ROWS_12(P) LAQ_ROWS_8(P) LAQ_ROWS_CASE(P, 9) LAQ_ROWS_CASE(P, 10) LAQ_ROWS_CASE(P, 11) LAQ_ROWS_CASE(P, 12)
#define LAQ_ROWS_24(P) LAQ_ROWS_12(P) LAQ_ROWS_CASE(P, 13) LAQ_ROWS_CASE(P, 14) LAQ_ROWS_CASE(P, 15) LAQ_ROWS_CASE(P, 16) \
    LAQ_ROWS_CASE(P, 17) LAQ_ROWS_CASE(P, 18) LAQ_ROWS_CASE(P, 19) LAQ_ROWS_CASE(P, 20) LAQ_ROWS_CASE(P, 21) LAQ_ROWS_CASE(P, 22) \
    LAQ_ROWS_CASE(P, 23) LAQ_ROWS_CASE(P, 24)
    switch (planes) {
    case 1: switch (rows) { LAQ_ROWS_24(1) default: break; } break;
    case 2: switch (rows) { LAQ_ROWS_12(2) default: break; } break;
    case 3: switch (rows) { LAQ_ROWS_8(3) default: break; } break;
    default: switch (rows) { LAQ_ROWS_6(4) default: break; } break;
    }
#undef LAQ_ROWS_CASE
    // Not reached: tiles hold at most 24/P rows.
    for (int r = 0; r < rows; r++) sums_vnni(q + r * stride, k4, w, planes, sums + r * planes * 64);
}

// Symmetric ternary, several rows: each word pair becomes the unsigned bytes u = w + 1 (2 where
// plane 0 is set, 0 where plane 1 is, 1 elsewhere) once per group of 4 rows of W, and one u8·s8
// dot product per row adds Σ u·q = D + Σ q, from which the row's total is taken: exact int32,
// one dot product per 64 weights and row where the select of the one-row kernel costs two.
// d[r·64 + n'] = D for the 64 columns of one block.
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
rows_pair_vnni_r(const int8_t *q, long stride, long k4, const uint64_t *w, const int rows, const int32_t *totals, int32_t *d) {
    const __m512i ones = _mm512_set1_epi8(1), twos = _mm512_set1_epi8(2);
    for (int s = 0; s < 4; s++) {
        __m512i acc[24];
#pragma clang loop unroll(full)
        for (int i = 0; i < rows; i++) acc[i] = _mm512_setzero_si512();
        for (long g = 0; g < k4; g++) {
            const uint64_t *word = w + g * 8 + s;
            const __m512i plus = _mm512_mask_mov_epi8(ones, _load_mask64((__mmask64 *)word), twos);
            const __m512i u = _mm512_mask_mov_epi8(plus, _load_mask64((__mmask64 *)(word + 4)), _mm512_setzero_si512());
#pragma clang loop unroll(full)
            for (int r = 0; r < rows; r++) {
                int32_t four;
                memcpy(&four, q + r * stride + 4 * g, 4);
                acc[r] = _mm512_dpbusd_epi32(acc[r], u, _mm512_set1_epi32(four));
            }
        }
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++)
            _mm512_storeu_si512(d + r * 64 + 16 * s, _mm512_sub_epi32(acc[r], _mm512_set1_epi32(totals[r])));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void rows_pair_vnni(const int8_t *q, long stride, long k4,
                                                                              const uint64_t *w, int rows, const int32_t *totals,
                                                                              int32_t *d) {
#define LAQ_ROWS_CASE(P, R) \
    case R: rows_pair_vnni_r(q, stride, k4, w, R, totals, d); return;
    switch (rows) { LAQ_ROWS_24(0) default: break; }
#undef LAQ_ROWS_CASE
    // Not reached: tiles hold at most 24 rows.
    for (int r = 0; r < rows; r++) signed_pair_vnni(q + r * stride, k4, w, d + r * 64);
}
#endif

// Rows per tile for P planes: R·P ≤ 24 accumulators (the cases rows_vnni compiles); symmetric
// ternary pairs (P = 0 here) 24.
static int tile_rows(int plane_count) { return plane_count <= 1 ? 24 : 24 / plane_count; }

static void signed_pair_scalar(const int8_t *q, long k4, const uint64_t *w, int32_t *d);

// The sums of a tile of rows for one block: plane sums at sums[(r·P + p)·64 + n'], or with
// `pair` the symmetric ternary D at sums[r·64 + n'], on the tile kernels of `isa` (scalar: row
// by row).
static void tile_sums(const int8_t *q, long stride, long k4, const uint64_t *w, int pair, int planes, int rows, const int32_t *totals,
                      long width, int32_t *sums, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512_VNNI) {
        if (pair) rows_pair_vnni(q, stride, k4, w, rows, totals, sums);
        else rows_vnni(q, stride, k4, w, rows, planes, sums);
        return;
    }
    if (isa >= LAQ_ISA_AVX2) {
        dot_block_avx2(q, stride, k4, w, pair ? DOT_PAIR : DOT_SUMS, planes, rows, width, sums);
        // Σ (w + 1)·q less the row's Σ q.
        if (pair)
            for (int r = 0; r < rows; r++)
                for (long j = 0; j < width; j++) sums[r * 64 + j] -= totals[r];
        return;
    }
#endif
    (void)totals, (void)width;
    for (int r = 0; r < rows; r++) {
        if (pair) signed_pair_scalar(q + r * stride, k4, w, sums + r * 64);
        else sums_scalar(q + r * stride, k4, w, planes, sums + r * planes * 64);
    }
}

void laq_dot_planes_multiply_rows(const int8_t *q, long stride, long m, const float *scales, const int32_t *totals, long k4,
                                  long n, const uint64_t *planes, int plane_count, const float *sum_levels,
                                  const float *pair_levels, float *c,
                                  long ldc, int accumulate, const laq_epilogue *epilogue, long block_begin, long block_end, int isa) {
    if (m <= 0) return;
    const int pair = pair_levels != 0;
    // Tiles of equal size (at most the kernel's rows): 32 rows as 16 + 16, not 24 + 8.
    int most = tile_rows(pair ? 0 : plane_count);
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX2 && isa < LAQ_ISA_AVX512_VNNI) most = tile_rows_avx2(pair ? DOT_PAIR : DOT_SUMS, plane_count);
#endif
    const long tiles = (m + most - 1) / most, tile = (m + tiles - 1) / tiles;
    int32_t sums[24 * 64] __attribute__((aligned(64)));
#if defined(__x86_64__)
    // One row on AVX2 (a convolution of one position): the row's tables, as the one-row kernels.
    const int lookup = m == 1 && plane_count > 0 && isa >= LAQ_ISA_AVX2 && isa < LAQ_ISA_AVX512_VNNI;
    uint8_t stack[LAQ_TABLE_STACK(lookup, k4)] __attribute__((aligned(64)));
    const lut_tables tables = row_tables(q, k4, 0, lookup, stack);
#endif
    for (long b = block_begin; b < block_end; b++) {
        const long first = 64 * b, width = n - first < 64 ? n - first : 64;
        const uint64_t *w = planes + b * k4 * plane_count * 4;
        const float *lv = sum_levels + b * (plane_count + 1) * 64;
        for (long r0 = 0; r0 < m; r0 += tile) {
            const int rows = (int)(m - r0 < tile ? m - r0 : tile);
#if defined(__x86_64__)
            if (tables.bytes) lut_row_sums(tables.bytes, k4, w, pair, plane_count, sums);
            else
#endif
                if (plane_count > 0) tile_sums(q + r0 * stride, stride, k4, w, pair, plane_count, rows, totals + r0, width, sums, isa);
            for (int r = 0; r < rows; r++) {
                // The combinations of laq_dot_planes_multiply_signed_pair and laq_dot_planes_multiply.
                const combined to = {c + (r0 + r) * ldc + first, accumulate, epilogue,
                                     epilogue && epilogue->residual ? epilogue->residual + (r0 + r) * ldc + first : 0, first};
                if (pair) combine_pair(sums + r * 64, scales[r0 + r], pair_levels + first, to, width, isa);
                else combine_planes(sums + r * plane_count * 64, plane_count, totals[r0 + r], scales[r0 + r], lv, to, width, isa);
            }
        }
    }
#if defined(__x86_64__)
    free(tables.heap);
#endif
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
// The signed bytes of one word pair for one group of 4 rows: x where plane 0's bit is set, −x
// where plane 1's is, 0 elsewhere (one-hot planes never overlap; x ∈ [−127, 127], so −x fits).
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
signed_pair_group(const int8_t *q, const uint64_t *w, long g, __m512i ones, __m512i acc[4]) {
    int32_t four;
    memcpy(&four, q + 4 * g, 4);
    const __m512i x = _mm512_set1_epi32(four), negative = _mm512_sub_epi8(_mm512_setzero_si512(), x);
    const uint64_t *word = w + g * 8;
    for (int s = 0; s < 4; s++) {
        const __m512i plus = _mm512_maskz_mov_epi8(_load_mask64((__mmask64 *)(word + s)), x);
        const __m512i v = _mm512_mask_mov_epi8(plus, _load_mask64((__mmask64 *)(word + 4 + s)), negative);
        acc[s] = _mm512_dpbusd_epi32(acc[s], ones, v);  // 1·v, 4 rows at a time
    }
}

// One masked byte select per word and one u8·s8 dot product (by ones) per word pair, four
// groups in flight, each with its own accumulators (rather than 0/1 bytes from the masks and
// inputs offset by 128 in one group: docs/PERFORMANCE.md, "Kernel tuning").
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void signed_pair_vnni(const int8_t *q, long k4, const uint64_t *w, int32_t *d) {
    __m512i acc[4][4];
    for (int u = 0; u < 4; u++)
        for (int s = 0; s < 4; s++) acc[u][s] = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1);
    long g = 0;
    for (; g + 4 <= k4; g += 4)
        for (int u = 0; u < 4; u++) signed_pair_group(q, w, g + u, ones, acc[u]);
    for (; g < k4; g++) signed_pair_group(q, w, g, ones, acc[0]);
    for (int s = 0; s < 4; s++)
        _mm512_storeu_si512(d + 16 * s, _mm512_add_epi32(_mm512_add_epi32(acc[0][s], acc[1][s]), _mm512_add_epi32(acc[2][s], acc[3][s])));
}
#endif

void laq_dot_planes_multiply_signed_pair(const int8_t *q, long k4, float scale, long n, const uint64_t *planes,
                                         const float *levels, float *c, int accumulate, const uint8_t *tables_given,
                                         long block_begin, long block_end, int isa) {
    int32_t d[64] __attribute__((aligned(64)));
#if defined(__x86_64__)
    // AVX2: the sums of both planes from the row's tables, D their difference.
    const int lookup = isa >= LAQ_ISA_AVX2 && isa < LAQ_ISA_AVX512_VNNI;
    uint8_t stack[LAQ_TABLE_STACK(lookup && !tables_given, k4)] __attribute__((aligned(64)));
    const lut_tables tables = row_tables(q, k4, tables_given, lookup, stack);
#endif
    for (long b = block_begin; b < block_end; b++) {
        const long first = 64 * b, width = n - first < 64 ? n - first : 64;
        const uint64_t *w = planes + b * k4 * 2 * 4;
#if defined(__x86_64__)
        if (isa >= LAQ_ISA_AVX512_VNNI) signed_pair_vnni(q, k4, w, d);
        else if (tables.bytes) lut_row_sums(tables.bytes, k4, w, 1, 2, d);
        else if (isa >= LAQ_ISA_AVX2) {
            // (Tables not allocated: the byte products of w + 1, less Σ q; q is zero past k.)
            int32_t total = 0;
            for (long i = 0; i < 4 * k4; i++) total += q[i];
            dot_block_avx2(q, 0, k4, w, DOT_PAIR, 2, 1, width, d);
            for (int j = 0; j < width; j++) d[j] -= total;
        } else
#endif
            signed_pair_scalar(q, k4, w, d);
        combine_pair(d, scale, levels + first, to_output(c + first, accumulate), width, isa);
    }
#if defined(__x86_64__)
    free(tables.heap);
#endif
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

// Bit dot planes (linear m-bit): the planes of one word set become each weight's code as a byte
// (Σ_p 2^p · bit p, at most 15), and one u8·s8 dot product per 64 weights and row adds
// C = Σ_k code·q, exact in int32 (|C| ≤ 15·127·K). Where the plane sums took P dot products and
// P expansions per 64 weights and row, the codes take P masked moves per word set (shared by a
// tile's rows) and one dot product.

// The code of element (k, n) of a bit dot-plane matrix.
static inline int dot_code(const uint64_t *w, int planes, long g, int s, int bit) {
    int code = 0;
    for (int p = 0; p < planes; p++) code |= (int)((w[(g * planes + p) * 4 + s] >> bit) & 1) << p;
    return code;
}

// C for the 64 columns of one block, one row (scalar).
static void codes_scalar(const int8_t *q, long k4, const uint64_t *w, int planes, int32_t *sums) {
    for (int j = 0; j < 64; j++) {
        int32_t total = 0;
        for (long g = 0; g < k4; g++)
            for (int i = 0; i < 4; i++) total += dot_code(w, planes, g, j / 16, 4 * (j % 16) + i) * q[4 * g + i];
        sums[j] = total;
    }
}

#if defined(__x86_64__)
// The code bytes of one word set (sub-block s of group g): bit 0's bytes, then 2^p added where
// plane p is set.
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline __m512i
code_bytes(const uint64_t *word, const int planes) {
    __m512i code = _mm512_maskz_mov_epi8(_load_mask64((__mmask64 *)word), _mm512_set1_epi8(1));
    for (int p = 1; p < planes; p++)
        code = _mm512_mask_add_epi8(code, _load_mask64((__mmask64 *)(word + 4 * p)), code, _mm512_set1_epi8((char)(1 << p)));
    return code;
}

// One group of 4 rows of W for one row of A: the four sub-blocks' dot products.
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
codes_group(const int8_t *q, long g, const uint64_t *w, const int planes, __m512i acc[4]) {
    int32_t four;
    memcpy(&four, q + 4 * g, 4);
    const __m512i x = _mm512_set1_epi32(four);
    const uint64_t *word = w + g * planes * 4;
#pragma clang loop unroll(full)
    for (int s = 0; s < 4; s++) acc[s] = _mm512_dpbusd_epi32(acc[s], code_bytes(word + s, planes), x);
}

// One row: the four sub-blocks of two groups in flight (8 chains), P a constant.
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
codes_row_vnni_p(const int8_t *q, long k4, const uint64_t *w, const int planes, int32_t *sums) {
    __m512i even[4], odd[4];
    for (int s = 0; s < 4; s++) even[s] = odd[s] = _mm512_setzero_si512();
    long g = 0;
    for (; g + 2 <= k4; g += 2) {
        codes_group(q, g, w, planes, even);
        codes_group(q, g + 1, w, planes, odd);
    }
    if (g < k4) codes_group(q, g, w, planes, even);
    for (int s = 0; s < 4; s++) _mm512_storeu_si512(sums + 16 * s, _mm512_add_epi32(even[s], odd[s]));
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void codes_row_vnni(const int8_t *q, long k4, const uint64_t *w,
                                                                              int planes, int32_t *sums) {
    switch (planes) {
    case 1: codes_row_vnni_p(q, k4, w, 1, sums); break;
    case 2: codes_row_vnni_p(q, k4, w, 2, sums); break;
    case 3: codes_row_vnni_p(q, k4, w, 3, sums); break;
    default: codes_row_vnni_p(q, k4, w, 4, sums); break;
    }
}

// R rows (a constant), sub-block by sub-block: sums[r·64 + n'] = C of row r.
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
codes_rows_vnni_r(const int8_t *q, long stride, long k4, const uint64_t *w, int planes, const int rows, int32_t *sums) {
    for (int s = 0; s < 4; s++) {
        __m512i acc[24];
#pragma clang loop unroll(full)
        for (int i = 0; i < rows; i++) acc[i] = _mm512_setzero_si512();
        for (long g = 0; g < k4; g++) {
            const __m512i code = code_bytes(w + g * planes * 4 + s, planes);
#pragma clang loop unroll(full)
            for (int r = 0; r < rows; r++) {
                int32_t four;
                memcpy(&four, q + r * stride + 4 * g, 4);
                acc[r] = _mm512_dpbusd_epi32(acc[r], code, _mm512_set1_epi32(four));
            }
        }
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) _mm512_storeu_si512(sums + r * 64 + 16 * s, acc[r]);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void codes_rows_vnni(const int8_t *q, long stride, long k4,
                                                                               const uint64_t *w, int planes, int rows,
                                                                               int32_t *sums) {
    // One row: the one-row kernel, which keeps two groups of all four sub-blocks in flight.
    if (rows == 1) {
        codes_row_vnni(q, k4, w, planes, sums);
        return;
    }
#define LAQ_ROWS_CASE(P, R) \
    case R: codes_rows_vnni_r(q, stride, k4, w, planes, R, sums); return;
    switch (rows) { LAQ_ROWS_24(0) default: break; }
#undef LAQ_ROWS_CASE
    // Not reached: tiles hold at most 24 rows.
    for (int r = 0; r < rows; r++) codes_row_vnni(q + r * stride, k4, w, planes, sums + r * 64);
}
#endif

#if defined(__x86_64__)
// With VBMI and GFNI the code bytes of a word set take two instructions whatever P: a byte
// permutation puts byte b of planes P−1…0 in the top bytes of qword b (zeros below), and
// GF2P8AFFINEQB by the columns of the identity transposes each qword's 8×8 bits, so that byte
// 8b + i of the result holds bit 8b + i of every plane: that lane's code.
#define LAQ_GFNI __attribute__((target("avx512f,avx512bw,avx512vnni,avx512vbmi,gfni")))

// The permutation of each sub-block s over a group's P·4 words (P·32 bytes, two registers):
// index[s] and the bytes it keeps.
typedef struct {
    __m512i index[4];
    __mmask64 keep;
} code_shuffle;

LAQ_GFNI static code_shuffle code_shuffle_for(int planes) {
    code_shuffle shuffle;
    uint8_t index[64] __attribute__((aligned(64)));
    shuffle.keep = 0;
    for (int s = 0; s < 4; s++) {
        for (int b = 0; b < 8; b++)
            for (int j = 0; j < 8; j++) {
                const int p = 7 - j;
                index[8 * b + j] = p < planes ? (uint8_t)(p * 32 + s * 8 + b) : 0;
                if (p < planes) shuffle.keep |= 1ull << (8 * b + j);
            }
        shuffle.index[s] = _mm512_load_si512(index);
    }
    return shuffle;
}

// A group's words: P·32 bytes, the second register only as far as they go (P = 3: 32 bytes).
LAQ_GFNI __attribute__((always_inline)) static inline void group_words(const uint64_t *word, const int planes, __m512i *low, __m512i *high) {
    *low = planes >= 2 ? _mm512_loadu_si512(word) : _mm512_maskz_loadu_epi8(planes == 1 ? 0xFFFFFFFFull : 0, word);
    *high = planes == 4 ? _mm512_loadu_si512(word + 8) : planes == 3 ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, word + 8) : _mm512_setzero_si512();
}

LAQ_GFNI __attribute__((always_inline)) static inline __m512i code_bytes_gfni(__m512i low, __m512i high, const code_shuffle *shuffle, int s) {
    const __m512i gathered = _mm512_maskz_permutex2var_epi8(shuffle->keep, low, shuffle->index[s], high);
    return _mm512_gf2p8affine_epi64_epi8(_mm512_set1_epi64((long long)0x8040201008040201ull), gathered, 0);
}

LAQ_GFNI __attribute__((always_inline)) static inline void codes_group_gfni(const int8_t *q, long g, const uint64_t *w, const int planes,
                                                                           const code_shuffle *shuffle, __m512i acc[4]) {
    int32_t four;
    memcpy(&four, q + 4 * g, 4);
    const __m512i x = _mm512_set1_epi32(four);
    __m512i low, high;
    group_words(w + g * planes * 4, planes, &low, &high);
#pragma clang loop unroll(full)
    for (int s = 0; s < 4; s++) acc[s] = _mm512_dpbusd_epi32(acc[s], code_bytes_gfni(low, high, shuffle, s), x);
}

LAQ_GFNI __attribute__((always_inline)) static inline void codes_row_gfni_p(const int8_t *q, long k4, const uint64_t *w, const int planes,
                                                                           int32_t *sums) {
    const code_shuffle shuffle = code_shuffle_for(planes);
    __m512i even[4], odd[4];
    for (int s = 0; s < 4; s++) even[s] = odd[s] = _mm512_setzero_si512();
    long g = 0;
    for (; g + 2 <= k4; g += 2) {
        codes_group_gfni(q, g, w, planes, &shuffle, even);
        codes_group_gfni(q, g + 1, w, planes, &shuffle, odd);
    }
    if (g < k4) codes_group_gfni(q, g, w, planes, &shuffle, even);
    for (int s = 0; s < 4; s++) _mm512_storeu_si512(sums + 16 * s, _mm512_add_epi32(even[s], odd[s]));
}

LAQ_GFNI static void codes_row_gfni(const int8_t *q, long k4, const uint64_t *w, int planes, int32_t *sums) {
    switch (planes) {
    case 1: codes_row_gfni_p(q, k4, w, 1, sums); break;
    case 2: codes_row_gfni_p(q, k4, w, 2, sums); break;
    case 3: codes_row_gfni_p(q, k4, w, 3, sums); break;
    default: codes_row_gfni_p(q, k4, w, 4, sums); break;
    }
}

LAQ_GFNI __attribute__((always_inline)) static inline void codes_rows_gfni_r(const int8_t *q, long stride, long k4, const uint64_t *w,
                                                                            int planes, const int rows, int32_t *sums) {
    const code_shuffle shuffle = code_shuffle_for(planes);
    for (int s = 0; s < 4; s++) {
        __m512i acc[24];
#pragma clang loop unroll(full)
        for (int i = 0; i < rows; i++) acc[i] = _mm512_setzero_si512();
        for (long g = 0; g < k4; g++) {
            __m512i low, high;
            group_words(w + g * planes * 4, planes, &low, &high);
            const __m512i code = code_bytes_gfni(low, high, &shuffle, s);
#pragma clang loop unroll(full)
            for (int r = 0; r < rows; r++) {
                int32_t four;
                memcpy(&four, q + r * stride + 4 * g, 4);
                acc[r] = _mm512_dpbusd_epi32(acc[r], code, _mm512_set1_epi32(four));
            }
        }
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) _mm512_storeu_si512(sums + r * 64 + 16 * s, acc[r]);
    }
}

LAQ_GFNI static void codes_rows_gfni(const int8_t *q, long stride, long k4, const uint64_t *w, int planes, int rows, int32_t *sums) {
    // One row: the one-row kernel, which keeps two groups of all four sub-blocks in flight.
    if (rows == 1) {
        codes_row_gfni(q, k4, w, planes, sums);
        return;
    }
#define LAQ_ROWS_CASE(P, R) \
    case R: codes_rows_gfni_r(q, stride, k4, w, planes, R, sums); return;
    switch (rows) { LAQ_ROWS_24(0) default: break; }
#undef LAQ_ROWS_CASE
    // Not reached: tiles hold at most 24 rows.
    for (int r = 0; r < rows; r++) codes_row_gfni(q + r * stride, k4, w, planes, sums + r * 64);
}
#undef LAQ_ROWS_6
#undef LAQ_ROWS_8
#undef LAQ_ROWS_12
#undef LAQ_ROWS_24
#endif

void laq_dot_codes_multiply_rows(const int8_t *q, long stride, long m, const float *scales, const int32_t *totals, long k4,
                                 long n, const uint64_t *planes, int plane_count, const float *offsets, const float *steps,
                                 float *c, long ldc, int accumulate, const laq_epilogue *epilogue, const uint8_t *tables_given,
                                 long block_begin, long block_end, int isa) {
    if (m <= 0) return;
    // Tiles of equal size, at most 24 rows (12 with AVX2: tile_rows_avx2).
#if defined(__x86_64__)
    const long most = isa >= LAQ_ISA_AVX512_VNNI ? 24 : isa >= LAQ_ISA_AVX2 ? tile_rows_avx2(DOT_CODES, plane_count) : 24;
#else
    const long most = 24;
#endif
    const long tiles = (m + most - 1) / most, tile = (m + tiles - 1) / tiles;
    int32_t sums[24 * 64] __attribute__((aligned(64)));
#if defined(__x86_64__)
    // One row on AVX2: each plane's sums from the row's tables, C = Σ_p 2^p·S_p.
    int32_t plane_sums[LAQ_MAX_PLANES * 64] __attribute__((aligned(64)));
    const int lookup = m == 1 && plane_count > 0 && isa >= LAQ_ISA_AVX2 && isa < LAQ_ISA_AVX512_VNNI;
    uint8_t stack[LAQ_TABLE_STACK(lookup && !tables_given, k4)] __attribute__((aligned(64)));
    const lut_tables tables = row_tables(q, k4, tables_given, lookup, stack);
#endif
    for (long b = block_begin; b < block_end; b++) {
        const long first = 64 * b, width = n - first < 64 ? n - first : 64;
        const uint64_t *w = planes + b * k4 * plane_count * 4;
        for (long r0 = 0; r0 < m; r0 += tile) {
            const int rows = (int)(m - r0 < tile ? m - r0 : tile);
#if defined(__x86_64__)
            if (isa >= LAQ_ISA_AVX512_GFNI) codes_rows_gfni(q + r0 * stride, stride, k4, w, plane_count, rows, sums);
            else if (isa >= LAQ_ISA_AVX512_VNNI) codes_rows_vnni(q + r0 * stride, stride, k4, w, plane_count, rows, sums);
            else if (tables.bytes) {
                lut_block_avx2(tables.bytes, k4, w, plane_count, plane_count, plane_sums);
                for (int j = 0; j < 64; j++) {
                    int32_t code_sum = 0;
                    for (int p = 0; p < plane_count; p++) code_sum += plane_sums[p * 64 + j] * (1 << p);
                    sums[j] = code_sum;
                }
            } else if (isa >= LAQ_ISA_AVX2) dot_block_avx2(q + r0 * stride, stride, k4, w, DOT_CODES, plane_count, rows, width, sums);
            else
#endif
                for (int r = 0; r < rows; r++) codes_scalar(q + (r0 + r) * stride, k4, w, plane_count, sums + r * 64);
            for (int r = 0; r < rows; r++) {
                const combined to = {c + (r0 + r) * ldc + first, accumulate, epilogue,
                                     epilogue && epilogue->residual ? epilogue->residual + (r0 + r) * ldc + first : 0, first};
                combine_codes(sums + r * 64, (float)totals[r0 + r], scales[r0 + r], offsets + first, steps + first, to, width, isa);
            }
        }
    }
#if defined(__x86_64__)
    free(tables.heap);
#endif
}
