// Float32 products with a weight matrix packed once into panels of 32 columns (a convolution's
// kernel, at load): C = A·W (+ C). Each element of C is one chain of fused multiply-adds over
// k in order from 0, held in a register, then C's old value added when accumulating: the same
// bits for any split of the rows and panels between threads. A 12-row by 32-column tile keeps
// 24 accumulators in registers; A is read in place (each value broadcast), W's panel streams.
//
// A panel's layout is the instruction set's (laq_panel_offset): with AVX-512 a row of k is its
// 32 columns; otherwise each 16-column half is a block of k rows of 16, because AVX2's tiles take
// a panel's halves in turn: a half then streams k·64 contiguous bytes, where rows of 32 had it
// read every other 64-byte line of k·128 (and the hardware fetch the other half's lines beside
// them), so that a panel of a large kernel left L2 between tiles. On one AVX2 core, ResNet50's
// layers with the largest kernels ran 8–18% faster (docs/PERFORMANCE.md, "Panels in halves").
// The chains are the same, so are the bits.
#include "laq_kernels.h"
#include "lanes.h"
#include "epilogue.h"

#include <string.h>

// The epilogue's affine map is a product, then a sum (two roundings), as laq_scale_shift's.
#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { PANEL = 32, HALF = 16, TILE_ROWS = 12 };

long laq_panels_length(long k, long n) { return (n + PANEL - 1) / PANEL * PANEL * k; }

long laq_panel_offset(long k, long t, long j, int isa) {
    return isa >= LAQ_ISA_AVX512 ? t * PANEL + j : (j / HALF) * k * HALF + t * HALF + j % HALF;
}

void laq_panels_pack(const float *w, long k, long n, float *panels, int isa) {
    // Runs of columns contiguous in both layouts (a row's 32, or a half's 16), zeros past n.
    const long run = isa >= LAQ_ISA_AVX512 ? PANEL : HALF, end = (n + PANEL - 1) / PANEL * PANEL;
    for (long first = 0; first < end; first += run) {
        const long width = n - first < run ? (n > first ? n - first : 0) : run;
        for (long t = 0; t < k; t++) {
            float *out = panels + first / PANEL * k * PANEL + laq_panel_offset(k, t, first % PANEL, isa);
            if (width > 0) memcpy(out, w + t * n + first, sizeof(float) * (size_t)width);
            memset(out + width, 0, sizeof(float) * (size_t)(run - width));
        }
    }
}

#if defined(__x86_64__)
// How much of a panel's second 16 columns a tile computes: none (a panel of ≤ 16 columns), the
// first 8 in 256-bit registers (17–24 columns: a 512-bit operation costs two 256-bit ones on
// CPUs that split them, Zen 4's), or all 16. The padding columns beyond are never stored, so
// skipping them leaves every stored chain as it is.
enum { UPPER_NONE = 0, UPPER_HALF = 1, UPPER_FULL = 2 };

static inline int upper_for(long width) { return width <= 16 ? UPPER_NONE : width <= 24 ? UPPER_HALF : UPPER_FULL; }

// One row's accumulators: columns 0–15, 16–31 (UPPER_FULL) or 16–23 (UPPER_HALF).
typedef struct {
    __m512 low, high;
    __m256 half;
} panel_row;

// acc += x·(the panel row w0, w1 / w1h) by fused multiply-adds, in the columns `upper` computes.
#define LAQ_PANEL_STEP(x, w0, w1, w1h, acc, upper)                                      \
    do {                                                                                \
        const __m512 v_ = _mm512_set1_ps(x);                                            \
        (acc).low = _mm512_fmadd_ps(v_, (w0), (acc).low);                               \
        if ((upper) == UPPER_FULL) (acc).high = _mm512_fmadd_ps(v_, (w1), (acc).high);  \
        if ((upper) == UPPER_HALF)                                                      \
            (acc).half = _mm256_fmadd_ps(_mm512_castps512_ps256(v_), (w1h), (acc).half); \
    } while (0)

// The columns 16–31 of a row's sums, as a 512-bit vector (lanes 8–15 zero for UPPER_HALF).
__attribute__((target("avx512f"), always_inline)) static inline __m512 panel_high(panel_row acc, int upper) {
    return upper == UPPER_HALF ? _mm512_zextps256_ps512(acc.half) : acc.high;
}

__attribute__((target("avx512f"), always_inline)) static inline void
tile(const float *a, long lda, const float *panel, long k, float *c, long ldc, __mmask16 m0, __mmask16 m1, int accumulate, const long rows,
     const int upper) {
    panel_row acc[TILE_ROWS];
#pragma clang loop unroll(full)
    for (long r = 0; r < TILE_ROWS; r++) {
        acc[r].low = acc[r].high = _mm512_setzero_ps();
        acc[r].half = _mm256_setzero_ps();
    }
    for (long t = 0; t < k; t++) {
        const float *w = panel + t * PANEL;
        const __m512 w0 = _mm512_loadu_ps(w), w1 = upper == UPPER_FULL ? _mm512_loadu_ps(w + 16) : _mm512_setzero_ps();
        const __m256 w1h = upper == UPPER_HALF ? _mm256_loadu_ps(w + 16) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
        for (long r = 0; r < TILE_ROWS; r++) {
            if (r >= rows) break;
            LAQ_PANEL_STEP(a[r * lda + t], w0, w1, w1h, acc[r], upper);
        }
    }
#pragma clang loop unroll(full)
    for (long r = 0; r < TILE_ROWS; r++) {
        if (r >= rows) break;
        float *out = c + r * ldc;
        __m512 low = acc[r].low, high = panel_high(acc[r], upper);
        if (accumulate) {
            low = _mm512_add_ps(low, _mm512_maskz_loadu_ps(m0, out));
            if (upper != UPPER_NONE) high = _mm512_add_ps(high, _mm512_maskz_loadu_ps(m1, out + 16));
        }
        _mm512_mask_storeu_ps(out, m0, low);
        if (upper != UPPER_NONE) _mm512_mask_storeu_ps(out + 16, m1, high);
    }
}

__attribute__((target("avx512f"))) static void panel_avx512(const float *a, long lda, const float *w, long k, long width,
                                                           float *c, long ldc, long row_begin, long row_end, int accumulate) {
    const __mmask16 m0 = laq_lanes(width), m1 = laq_lanes(width - 16);
    const int upper = upper_for(width);
    long i = row_begin;
    for (; i + TILE_ROWS <= row_end; i += TILE_ROWS) {
        const float *ai = a + i * lda;
        float *ci = c + i * ldc;
        if (upper == UPPER_FULL) tile(ai, lda, w, k, ci, ldc, m0, m1, accumulate, TILE_ROWS, UPPER_FULL);
        else if (upper == UPPER_HALF) tile(ai, lda, w, k, ci, ldc, m0, m1, accumulate, TILE_ROWS, UPPER_HALF);
        else tile(ai, lda, w, k, ci, ldc, m0, m1, accumulate, TILE_ROWS, UPPER_NONE);
    }
    // The last rows, fewer than a tile, on the full panel.
    switch (row_end - i) {
#define LAQ_TAIL(rows) \
    case rows: tile(a + i * lda, lda, w, k, c + i * ldc, ldc, m0, m1, accumulate, rows, UPPER_FULL); break;
        LAQ_TAIL(1) LAQ_TAIL(2) LAQ_TAIL(3) LAQ_TAIL(4) LAQ_TAIL(5) LAQ_TAIL(6)
        LAQ_TAIL(7) LAQ_TAIL(8) LAQ_TAIL(9) LAQ_TAIL(10) LAQ_TAIL(11)
#undef LAQ_TAIL
    default: break;
    }
}
#endif

#if defined(__x86_64__)
// AVX2 (CPUs without AVX-512: AMD's Zen 2 and 3, Intel's client cores) has 16 vector registers
// of 8 floats: a tile is up to 6 rows by one half of a panel (16 columns, two registers a row:
// 12 accumulators, two of W and a broadcast), the panel's halves in turn. The chains are the
// same, so are the bits.
enum { HALF_ROWS = 6 };

typedef struct {
    __m256 low, high;
} half_row;

// acc += x·(w0, w1), w1 (columns 8–15 of the half) where `upper`.
#define LAQ_HALF_STEP(x, w0, w1, acc, upper)                                   \
    do {                                                                      \
        const __m256 v_ = _mm256_set1_ps(x);                                  \
        (acc).low = _mm256_fmadd_ps(v_, (w0), (acc).low);                     \
        if (upper) (acc).high = _mm256_fmadd_ps(v_, (w1), (acc).high);        \
    } while (0)

__attribute__((target("avx2,fma"), always_inline)) static inline void
half_tile(const float *a, long lda, const float *half, long k, float *c, long ldc, __m256i m0, __m256i m1, int accumulate, const long rows,
          const int upper, const int full) {
    half_row acc[HALF_ROWS];
#pragma clang loop unroll(full)
    for (long r = 0; r < HALF_ROWS; r++) acc[r].low = acc[r].high = _mm256_setzero_ps();
    for (long t = 0; t < k; t++) {
        const float *w = half + t * HALF;
        const __m256 w0 = _mm256_loadu_ps(w), w1 = upper ? _mm256_loadu_ps(w + 8) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
        for (long r = 0; r < HALF_ROWS; r++) {
            if (r >= rows) break;
            LAQ_HALF_STEP(a[r * lda + t], w0, w1, acc[r], upper);
        }
    }
#pragma clang loop unroll(full)
    for (long r = 0; r < HALF_ROWS; r++) {
        if (r >= rows) break;
        float *out = c + r * ldc;
        __m256 low = acc[r].low, high = acc[r].high;
        if (accumulate) {
            low = _mm256_add_ps(low, LAQ_LOAD8(out, m0, full));
            if (upper) high = _mm256_add_ps(high, LAQ_LOAD8(out + 8, m1, full));
        }
        LAQ_STORE8(out, m0, low, full);
        if (upper) LAQ_STORE8(out + 8, m1, high, full);
    }
}

__attribute__((target("avx2,fma"))) static void panel_avx2(const float *a, long lda, const float *w, long k, long width, float *c,
                                                          long ldc, long row_begin, long row_end, int accumulate) {
    for (long half = 0; half * 16 < width; half++) {
        const long columns = width - 16 * half;
        const __m256i m0 = laq_lanes8(columns), m1 = laq_lanes8(columns - 8);
        const float *hw = w + half * k * HALF;
        float *hc = c + 16 * half;
        long i = row_begin;
        // Whole halves store whole vectors; a narrow last half, masked ones.
        for (; i + HALF_ROWS <= row_end; i += HALF_ROWS) {
            const float *ai = a + i * lda;
            float *ci = hc + i * ldc;
            if (columns >= 16) half_tile(ai, lda, hw, k, ci, ldc, m0, m1, accumulate, HALF_ROWS, 1, 1);
            else if (columns > 8) half_tile(ai, lda, hw, k, ci, ldc, m0, m1, accumulate, HALF_ROWS, 1, 0);
            else if (columns == 8) half_tile(ai, lda, hw, k, ci, ldc, m0, m1, accumulate, HALF_ROWS, 0, 1);
            else half_tile(ai, lda, hw, k, ci, ldc, m0, m1, accumulate, HALF_ROWS, 0, 0);
        }
        switch (row_end - i) {
#define LAQ_TAIL(rows) \
    case rows: half_tile(a + i * lda, lda, hw, k, hc + i * ldc, ldc, m0, m1, accumulate, rows, 1, 0); break;
            LAQ_TAIL(1) LAQ_TAIL(2) LAQ_TAIL(3) LAQ_TAIL(4) LAQ_TAIL(5)
#undef LAQ_TAIL
        default: break;
        }
    }
}
#endif

void laq_panel_multiply(const float *a, long lda, const float *w, long k, long width, float *c, long ldc, long row_begin,
                        long row_end, int accumulate, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        panel_avx512(a, lda, w, k, width, c, ldc, row_begin, row_end, accumulate);
        return;
    }
    if (isa >= LAQ_ISA_AVX2) {
        panel_avx2(a, lda, w, k, width, c, ldc, row_begin, row_end, accumulate);
        return;
    }
#endif
    (void)isa;
    // The same chains in scalar code: Σ_t a·w by fmaf in t order, then + C.
    for (long i = row_begin; i < row_end; i++)
        for (long j = 0; j < width; j++) {
            float sum = 0;
            for (long t = 0; t < k; t++) sum = __builtin_fmaf(a[i * lda + t], w[laq_panel_offset(k, t, j, isa)], sum);
            float *out = c + i * ldc + j;
            *out = accumulate ? sum + *out : sum;
        }
}

void laq_panels_multiply(const float *a, long lda, const float *panels, long k, long n, float *c, long ldc, long row_begin,
                         long row_end, long panel, int accumulate, int isa) {
    const long first = panel * PANEL, width = n - first < PANEL ? n - first : PANEL;
    laq_panel_multiply(a, lda, panels + panel * k * PANEL, k, width, c + first, ldc, row_begin, row_end, accumulate, isa);
}

// Convolutions straight from the input (implicit im2col). Row i of A is output position i's
// patch, taps in (kernel row, kernel column) order and each tap's channels in order, which is
// where im2col would copy them from: a tile of up to 12 positions gets each tap's sources
// (once for all the panels it goes through) and multiplies their channels in place, in
// im2col's order.
//
// Tiles. A kernel of more than one tap whose output rows hold 8 positions or more is tiled
// along output rows, so that each tap's sources in a tile are evenly spaced: with AVX-512 each
// row splits into ⌈W/12⌉ tiles of near-equal length (14 → 7 + 7, 56 → 4·11 + 12); with AVX2,
// whose kernel takes a tile in parts of up to 6 rows, into ⌈W/6⌉ parts of near-equal length,
// paired into tiles (28 → 5 + 6 | 5 + 6 | 6). Other convolutions split each image's positions
// into ⌈HW/12⌉ tiles of near-equal length, across rows (49 → 9 + 10 + 10 + 10 + 10, where tiles
// of 12 had left a last one of a single position: two chains a step, bound by the latency of
// the multiply-adds): rows of 7 (ResNet50's last stage) in parts of 3 and 4 rows ran its 3×3
// layers 5.0–5.8 ms where tiles across rows took 3.0–4.4 on one AVX2 core (512 channels, panel
// by panel), the small parts reading W from L2 once per 3 or 4 rows. Tile boundaries are a
// function of the shape and the instruction set (laq_panels_tile_start); the bits are not.
//
// Padding taps. In a tile along an output row, a tap whose input row lies outside the image is
// skipped, and so is a tap outside at the row's first or last position where that is true of
// at most the one position at each end (a 3×3 kernel's padding of one), when the caller says the
// kernel's weights are finite (`skips`). ONNX Runtime's kernels skip them too: 9% of a 3×3
// kernel's multiply-adds at 14×14 (18% at 7×7, which keeps tiles across rows). Every other
// padding tap multiplies zeros, as im2col does. The decision is a function of the shape and the
// tap alone, never of the tile or of a split between threads. Skipping a tap leaves the sum as
// a zero tap would, because a zero tap adds ±0 (w finite) to a sum that is never −0 but for one
// corner: a first product that underflows to −0 (|x·w| < 2⁻¹⁵⁰), where the zero tap makes it
// +0. Otherwise the bits are those of im2col and the panel product.

enum { LAQ_TAP_SKIPPED = -2 };

// Whether tiles run along output rows (above).
static int aligns_rows(const laq_conv_shape *s) { return s->kernel_h * s->kernel_w > 1 && s->out_width >= 8; }

// Tiles split each span of positions (an output row where tiles run along rows, else an
// image) into `parts` parts of near-equal length (part j starts at ⌊j·span/parts⌋), `per_tile`
// parts to a tile.
typedef struct {
    long span, parts, per_tile, tiles;
} tiling;

static tiling tiling_for(const laq_conv_shape *s, int isa) {
    tiling t;
    if (!aligns_rows(s)) {
        t.span = s->out_height * s->out_width;
        t.parts = (t.span + TILE_ROWS - 1) / TILE_ROWS;
        t.per_tile = 1;
    } else if (isa >= LAQ_ISA_AVX512 || isa < LAQ_ISA_AVX2) {
        t.span = s->out_width;
        t.parts = (t.span + TILE_ROWS - 1) / TILE_ROWS;
        t.per_tile = 1;
    } else {
        t.span = s->out_width;
        t.parts = (t.span + TILE_ROWS / 2 - 1) / (TILE_ROWS / 2);
        t.per_tile = 2;
    }
    t.tiles = (t.parts + t.per_tile - 1) / t.per_tile;
    return t;
}

long laq_panels_tile_count(const laq_conv_shape *shape, long m, int isa) {
    const tiling t = tiling_for(shape, isa);
    return m / t.span * t.tiles;
}

long laq_panels_tile_start(const laq_conv_shape *shape, long m, long tile, int isa) {
    const tiling t = tiling_for(shape, isa);
    const long part = tile % t.tiles * t.per_tile, start = tile / t.tiles * t.span + part * t.span / t.parts;
    return start < m ? start : m;
}

// The end of the tile that holds position i.
static long tile_end(const laq_conv_shape *s, long i, int isa) {
    const tiling t = tiling_for(s, isa);
    const long w = t.span, ow = i % w;
    // Part boundaries lie at ⌊j·w/parts⌋: the first above ow has j = ⌈(ow + 1)·parts/w⌉; the
    // tile's end is the boundary of the next multiple of per_tile parts (the span's end at most).
    long j = ((ow + 1) * t.parts + w - 1) / w;
    j = (j + t.per_tile - 1) / t.per_tile * t.per_tile;
    if (j > t.parts) j = t.parts;
    return i - ow + j * w / t.parts;
}

// A 1×1 convolution with unit strides: position i reads pixel i.
static int is_pointwise(const laq_conv_shape *s) {
    return s->kernel_h == 1 && s->kernel_w == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 && s->pad_left == 0 &&
           s->out_height == s->height && s->out_width == s->width;
}

// How many positions at the start (first) and end of an output row read kernel column tw
// outside the input.
static long outside_first(const laq_conv_shape *s, long tw) {
    const long before = s->pad_left - tw * s->dilation_w;  // the first position's column is −before
    const long count = before > 0 ? (before + s->stride_w - 1) / s->stride_w : 0;
    return count < s->out_width ? count : s->out_width;
}
static long outside_last(const laq_conv_shape *s, long tw) {
    // Position ow reads column ow·stride_w + tw·dilation_w − pad_left; inside while < width.
    const long first_column = tw * s->dilation_w - s->pad_left;
    const long inside = s->width - first_column > 0 ? (s->width - first_column + s->stride_w - 1) / s->stride_w : 0;
    return inside < s->out_width ? s->out_width - inside : 0;
}

// For each tap of the `rows` positions from i0: steps[tap] = d when its sources are
// sources[tap·12] + (r − lo)·d for rows lo ≤ r < rows − cut, all inside the input, with
// edges[tap] = lo + 2·cut (lo, cut ≤ 1: the rows outside are skipped; only sources[tap·12] is
// written: a first convolution's 49 taps of 3 channels spent 6% of its time writing all 12);
// steps[tap] = LAQ_TAP_SKIPPED for a tap skipped at every row; else steps[tap] = −1 and
// sources[tap·12 + r] is position r's channels, or `zeros` outside the input. `edges` = steps +
// kernel_h·kernel_w.
static void tile_sources(const float *x, const laq_conv_shape *s, const float *zeros, long i0, long rows, int skips,
                         const float **sources, long *steps) {
    const long taps = s->kernel_h * s->kernel_w;
    long *edges = steps + taps;
    if (is_pointwise(s)) {
        sources[0] = x + i0 * s->channels;
        steps[0] = s->channels;
        edges[0] = 0;
        return;
    }
    const long per_image = s->out_height * s->out_width;
    long image = i0 / per_image, oh = i0 % per_image / s->out_width, ow = i0 % s->out_width;
    if (ow + rows <= s->out_width) {
        // The tile lies along one output row: a tap's sources inside the input lie
        // stride_w·channels apart.
        const float *base = x + image * s->height * s->width * s->channels;
        const long step = s->stride_w * s->channels;
        long tap = 0;
        for (long th = 0; th < s->kernel_h; th++) {
            const long ih = oh * s->stride_h + th * s->dilation_h - s->pad_top;
            const int row_inside = ih >= 0 && ih < s->height;
            for (long tw = 0; tw < s->kernel_w; tw++, tap++) {
                const long iw = ow * s->stride_w + tw * s->dilation_w - s->pad_left;
                const float **row = sources + tap * 12;
                edges[tap] = 0;
                if (!row_inside) {
                    // Zeros at every row: skipped, or read from the zero row.
                    steps[tap] = skips && aligns_rows(s) ? LAQ_TAP_SKIPPED : 0;
                    row[0] = zeros;
                    continue;
                }
                const long first = outside_first(s, tw), last = outside_last(s, tw);
                const long lo = first > ow ? first - ow : 0, end = s->out_width - last - ow;
                const long hi = end < rows ? (end > 0 ? end : 0) : rows;
                if (lo == 0 && hi == rows) {
                    row[0] = base + (ih * s->width + iw) * s->channels;
                    steps[tap] = step;
                    continue;
                }
                if (skips && aligns_rows(s) && first <= 1 && last <= 1) {
                    if (hi <= lo) {
                        steps[tap] = LAQ_TAP_SKIPPED;
                        continue;
                    }
                    row[0] = base + (ih * s->width + iw + lo * s->stride_w) * s->channels;
                    steps[tap] = step;
                    edges[tap] = lo + 2 * (rows - hi);
                    continue;
                }
                for (long r = 0; r < rows; r++)
                    row[r] = r < lo || r >= hi ? zeros : base + (ih * s->width + iw + r * s->stride_w) * s->channels;
                steps[tap] = -1;
            }
        }
        return;
    }
    // A tile across output rows: position by position, zeros outside the input.
    for (long r = 0; r < rows; r++) {
        const float *base = x + image * s->height * s->width * s->channels;
        long tap = 0;
        for (long th = 0; th < s->kernel_h; th++) {
            const long ih = oh * s->stride_h + th * s->dilation_h - s->pad_top;
            for (long tw = 0; tw < s->kernel_w; tw++, tap++) {
                const long iw = ow * s->stride_w + tw * s->dilation_w - s->pad_left;
                sources[tap * 12 + r] = ih < 0 || ih >= s->height || iw < 0 || iw >= s->width ? zeros : base + (ih * s->width + iw) * s->channels;
            }
        }
        if (++ow == s->out_width) {
            ow = 0;
            if (++oh == s->out_height) {
                oh = 0;
                image++;
            }
        }
    }
    for (long tap = 0; tap < taps; tap++) {
        const float *const *row = sources + tap * 12;
        long step = rows > 1 ? (long)(row[1] - row[0]) : 0;
        for (long r = 0; r < rows && step >= 0; r++)
            if (row[r] == zeros || row[r] != row[0] + r * step) step = -1;
        steps[tap] = step;
        edges[tap] = 0;
    }
}

#if defined(__x86_64__)
// One tap's chains over rows lo ≤ r < rows − cut of a tile, its sources evenly spaced from `a`
// (row lo's) `step` apart: acc[r] += a[(r − lo)·step + t]·w[t] for each of the tap's channels t.
__attribute__((target("avx512f"), always_inline)) static inline void
tap_chains(const float *a, long step, long channels, const float *w, panel_row *acc, const char *ahead, long ahead_bytes,
           const long rows, const int upper, const long lo, const long cut) {
    for (long t = 0; t < channels; t++, w += PANEL) {
        // `ahead`: a line per step into L2 (what the next tile will read).
        if (t * 64 < ahead_bytes) _mm_prefetch(ahead + t * 64, _MM_HINT_T1);
        const __m512 w0 = _mm512_loadu_ps(w), w1 = upper == UPPER_FULL ? _mm512_loadu_ps(w + 16) : _mm512_setzero_ps();
        const __m256 w1h = upper == UPPER_HALF ? _mm256_loadu_ps(w + 16) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
        for (long r = 0; r < TILE_ROWS; r++) {
            if (r >= rows - cut) break;
            if (r < lo) continue;
            LAQ_PANEL_STEP(a[(r - lo) * step + t], w0, w1, w1h, acc[r], upper);
        }
    }
}

// One tile of `rows` positions by one panel (columns first…first+31; `upper`: upper_for).
__attribute__((target("avx512f"), always_inline)) static inline void
conv_tile(const float **sources, const long *steps, long taps, long channels, const float *panel, const laq_epilogue *e, long first,
          float *c, const float *residual, long ldc, __mmask16 m0, __mmask16 m1, const char *ahead, long ahead_bytes, const long rows,
          const int upper) {
    // The lines the epilogue reads (the residual, when there is one: then C is most often that
    // same tensor, written over) or else writes (C), asked for now: by the end of the chains
    // they are in L1. A tile of a large output otherwise waits for memory at every store
    // (MobileNetV2 and ResNet50 write tensors of tens of MB at batch 16: a 1×1 convolution 64 →
    // 256 channels over 50,176 positions 19.1 → 17.5 ms on one core, 22.0 → 18.7 ms with a
    // residual connection written in place).
    const float *epilogue_lines = residual ? residual : c;
#pragma clang loop unroll(full)
    for (long r = 0; r < TILE_ROWS; r++) {
        if (r >= rows) break;
        _mm_prefetch((const char *)(epilogue_lines + r * ldc + first), _MM_HINT_T0);
        if (m1) _mm_prefetch((const char *)(epilogue_lines + r * ldc + first + 16), _MM_HINT_T0);
    }
    panel_row acc[TILE_ROWS];
#pragma clang loop unroll(full)
    for (long r = 0; r < TILE_ROWS; r++) {
        acc[r].low = acc[r].high = _mm512_setzero_ps();
        acc[r].half = _mm256_setzero_ps();
    }
    const float *w = panel;
    const long *edges = steps + taps;
    for (long tap = 0; tap < taps; tap++) {
        const float *const *source = sources + tap * 12;
        const long step = steps[tap];
        if (step == LAQ_TAP_SKIPPED) {
            w += channels * PANEL;
            continue;
        }
        if (step >= 0) {
            // Evenly spaced sources: one base and a stride, as a row-major A (fewer registers);
            // rows outside the input at either end skipped (tile_sources).
            switch (edges[tap]) {
            case 0: tap_chains(source[0], step, channels, w, acc, ahead, ahead_bytes, rows, upper, 0, 0); break;
            case 1: tap_chains(source[0], step, channels, w, acc, ahead, ahead_bytes, rows, upper, 1, 0); break;
            case 2: tap_chains(source[0], step, channels, w, acc, ahead, ahead_bytes, rows, upper, 0, 1); break;
            default: tap_chains(source[0], step, channels, w, acc, ahead, ahead_bytes, rows, upper, 1, 1); break;
            }
            w += channels * PANEL;
            continue;
        }
        for (long t = 0; t < channels; t++, w += PANEL) {
            const __m512 w0 = _mm512_loadu_ps(w), w1 = upper == UPPER_FULL ? _mm512_loadu_ps(w + 16) : _mm512_setzero_ps();
            const __m256 w1h = upper == UPPER_HALF ? _mm256_loadu_ps(w + 16) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
            for (long r = 0; r < TILE_ROWS; r++) {
                if (r >= rows) break;
                LAQ_PANEL_STEP(source[r][t], w0, w1, w1h, acc[r], upper);
            }
        }
    }
    const epilogue_columns left = epilogue_columns_avx512(e, first, m0), right = epilogue_columns_avx512(e, first + 16, m1);
#pragma clang loop unroll(full)
    for (long r = 0; r < TILE_ROWS; r++) {
        if (r >= rows) break;
        float *out = c + r * ldc + first;
        __m512 low = epilogue_apply_avx512(acc[r].low, &left), high = epilogue_apply_avx512(panel_high(acc[r], upper), &right);
        if (residual) {
            const float *add = residual + r * ldc + first;
            low = epilogue_residual_avx512(low, e, &left, add, m0);
            if (upper != UPPER_NONE) high = epilogue_residual_avx512(high, e, &right, add + 16, m1);
        }
        _mm512_mask_storeu_ps(out, m0, low);
        if (upper != UPPER_NONE) _mm512_mask_storeu_ps(out + 16, m1, high);
    }
}

// `ahead`, `ahead_bytes`: memory the first panel's chains ask for in L2 as they go (a line per
// step of a run of evenly spaced sources), or none.
__attribute__((target("avx512f"))) static void conv_panels_avx512(const float **sources, const long *steps, long taps, long channels,
                                                                 const float *panels, long n, const laq_epilogue *e, float *c,
                                                                 const float *residual, long rows, long panel_begin, long panel_end,
                                                                 const char *ahead, long ahead_bytes) {
    const long k = taps * channels;
    for (long p = panel_begin; p < panel_end; p++, ahead_bytes = 0) {
        const long first = p * PANEL, width = n - first < PANEL ? n - first : PANEL;
        const __mmask16 m0 = laq_lanes(width), m1 = laq_lanes(width - 16);
        const float *w = panels + (p - panel_begin) * k * PANEL;
        const int upper = upper_for(width);
        if (rows == TILE_ROWS && upper != UPPER_FULL) {
            if (upper == UPPER_HALF)
                conv_tile(sources, steps, taps, channels, w, e, first, c, residual, n, m0, m1, ahead, ahead_bytes, TILE_ROWS, UPPER_HALF);
            else conv_tile(sources, steps, taps, channels, w, e, first, c, residual, n, m0, m1, ahead, ahead_bytes, TILE_ROWS, UPPER_NONE);
            continue;
        }
        // Whole panels, and the last positions (fewer than a tile) of any panel.
        switch (rows) {
#define LAQ_ROWS(R) \
    case R: conv_tile(sources, steps, taps, channels, w, e, first, c, residual, n, m0, m1, ahead, ahead_bytes, R, UPPER_FULL); break;
            LAQ_ROWS(1) LAQ_ROWS(2) LAQ_ROWS(3) LAQ_ROWS(4) LAQ_ROWS(5) LAQ_ROWS(6)
            LAQ_ROWS(7) LAQ_ROWS(8) LAQ_ROWS(9) LAQ_ROWS(10) LAQ_ROWS(11) LAQ_ROWS(12)
#undef LAQ_ROWS
        default: break;
        }
    }
}
#endif

#if defined(__x86_64__)
// One tap's chains over sub-tile rows lo ≤ r < rows − cut (AVX2: HALF_ROWS rows, one half of a
// panel), row r's sources at a + (r + offset)·step.
__attribute__((target("avx2,fma"), always_inline)) static inline void
half_tap_chains(const float *a, long offset, long step, long channels, const float *w, half_row *acc, const char *ahead, long ahead_bytes,
                const long rows, const int upper, const long lo, const long cut) {
    for (long t = 0; t < channels; t++, w += HALF) {
        if (t * 64 < ahead_bytes) _mm_prefetch(ahead + t * 64, _MM_HINT_T1);
        const __m256 w0 = _mm256_loadu_ps(w), w1 = upper ? _mm256_loadu_ps(w + 8) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
        for (long r = 0; r < HALF_ROWS; r++) {
            if (r >= rows - cut) break;
            if (r < lo) continue;
            LAQ_HALF_STEP(a[(r + offset) * step + t], w0, w1, acc[r], upper);
        }
    }
}

// Rows row0…row0 + rows − 1 (rows ≤ HALF_ROWS) of a tile of `tile_rows` positions by the half
// panel `half` (columns first…first+15; `upper`: columns 8–15 too).
__attribute__((target("avx2,fma"), always_inline)) static inline void
conv_half_tile(const float **sources, const long *steps, long taps, long channels, const float *half, const laq_epilogue *e, long first,
               float *c, const float *residual, long ldc, __m256i m0, __m256i m1, const char *ahead, long ahead_bytes, long row0,
               long tile_rows, const long rows, const int upper, const int full) {
    const float *epilogue_lines = residual ? residual : c;
#pragma clang loop unroll(full)
    for (long r = 0; r < HALF_ROWS; r++) {
        if (r >= rows) break;
        _mm_prefetch((const char *)(epilogue_lines + (row0 + r) * ldc + first), _MM_HINT_T0);
    }
    half_row acc[HALF_ROWS];
#pragma clang loop unroll(full)
    for (long r = 0; r < HALF_ROWS; r++) acc[r].low = acc[r].high = _mm256_setzero_ps();
    const float *w = half;
    const long *edges = steps + taps;
    // The tile's first row is this part's first where row0 is 0; its last, where it ends here.
    const int has_first = row0 == 0, has_last = row0 + rows == tile_rows;
    for (long tap = 0; tap < taps; tap++) {
        const float *const *source = sources + tap * 12;
        const long step = steps[tap];
        if (step == LAQ_TAP_SKIPPED) {
            w += channels * HALF;
            continue;
        }
        if (step >= 0) {
            // Row r here is the tile's row0 + r, source[0] the tile's row lo.
            const long lo = edges[tap] & 1, cut = edges[tap] >> 1, offset = row0 - lo;
            switch ((has_first ? lo : 0) + 2 * (has_last ? cut : 0)) {
            case 0: half_tap_chains(source[0], offset, step, channels, w, acc, ahead, ahead_bytes, rows, upper, 0, 0); break;
            case 1: half_tap_chains(source[0], offset, step, channels, w, acc, ahead, ahead_bytes, rows, upper, 1, 0); break;
            case 2: half_tap_chains(source[0], offset, step, channels, w, acc, ahead, ahead_bytes, rows, upper, 0, 1); break;
            default: half_tap_chains(source[0], offset, step, channels, w, acc, ahead, ahead_bytes, rows, upper, 1, 1); break;
            }
            w += channels * HALF;
            continue;
        }
        for (long t = 0; t < channels; t++, w += HALF) {
            const __m256 w0 = _mm256_loadu_ps(w), w1 = upper ? _mm256_loadu_ps(w + 8) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
            for (long r = 0; r < HALF_ROWS; r++) {
                if (r >= rows) break;
                LAQ_HALF_STEP(source[row0 + r][t], w0, w1, acc[r], upper);
            }
        }
    }
    // (Without `upper`, m1 has no lanes: the right columns' masked loads read nothing.)
    const epilogue_columns8 left = epilogue_columns_avx2(e, first, m0, full);
    const epilogue_columns8 right = epilogue_columns_avx2(e, first + 8, m1, full && upper);
#pragma clang loop unroll(full)
    for (long r = 0; r < HALF_ROWS; r++) {
        if (r >= rows) break;
        float *out = c + (row0 + r) * ldc + first;
        __m256 low = epilogue_apply_avx2(acc[r].low, &left), high = epilogue_apply_avx2(acc[r].high, &right);
        if (residual) {
            const float *add = residual + (row0 + r) * ldc + first;
            low = epilogue_residual_avx2(low, e, &left, add, m0, full);
            if (upper) high = epilogue_residual_avx2(high, e, &right, add + 8, m1, full);
        }
        LAQ_STORE8(out, m0, low, full);
        if (upper) LAQ_STORE8(out + 8, m1, high, full);
    }
}

__attribute__((target("avx2,fma"))) static void conv_panels_avx2(const float **sources, const long *steps, long taps, long channels,
                                                                const float *panels, long n, const laq_epilogue *e, float *c,
                                                                const float *residual, long rows, long panel_begin, long panel_end,
                                                                const char *ahead, long ahead_bytes) {
    const long k = taps * channels;
    for (long p = panel_begin; p < panel_end; p++) {
        const float *w = panels + (p - panel_begin) * k * PANEL;
        for (long half = 0; half < 2 && p * PANEL + 16 * half < n; half++) {
            const long first = p * PANEL + 16 * half, columns = n - first;
            const __m256i m0 = laq_lanes8(columns), m1 = laq_lanes8(columns - 8);
            const float *hw = w + half * k * HALF;
            // The tile in parts of near-equal length, up to HALF_ROWS rows (12 → 6 + 6, 7 → 3 + 4).
            const long parts = (rows + HALF_ROWS - 1) / HALF_ROWS;
            for (long index = 0; index < parts; index++, ahead_bytes = 0) {
                const long row0 = index * rows / parts, part = (index + 1) * rows / parts - row0;
                // Whole halves store whole vectors; a narrow last half, masked ones.
                if (part == HALF_ROWS && columns <= 8) {
                    if (columns == 8)
                        conv_half_tile(sources, steps, taps, channels, hw, e, first, c, residual, n, m0, m1, ahead, ahead_bytes,
                                       row0, rows, HALF_ROWS, 0, 1);
                    else
                        conv_half_tile(sources, steps, taps, channels, hw, e, first, c, residual, n, m0, m1, ahead, ahead_bytes,
                                       row0, rows, HALF_ROWS, 0, 0);
                    continue;
                }
                switch (part + HALF_ROWS * (columns >= 16)) {
#define LAQ_ROWS(R)                                                                                                                        \
    case R:                                                                                                                                \
        conv_half_tile(sources, steps, taps, channels, hw, e, first, c, residual, n, m0, m1, ahead, ahead_bytes, row0, rows, R, \
                       1, 0);                                                                                                              \
        break;                                                                                                                             \
    case R + HALF_ROWS:                                                                                                                    \
        conv_half_tile(sources, steps, taps, channels, hw, e, first, c, residual, n, m0, m1, ahead, ahead_bytes, row0, rows, R, \
                       1, 1);                                                                                                              \
        break;
                    LAQ_ROWS(1) LAQ_ROWS(2) LAQ_ROWS(3) LAQ_ROWS(4) LAQ_ROWS(5) LAQ_ROWS(6)
#undef LAQ_ROWS
                default: break;
                }
            }
        }
    }
}
#endif

// A 1×1 kernel's tile reads its 12 rows of A for every panel. Rows a multiple of 4 KiB apart
// fall in one set of L1 (8 ways on the CPUs laq has seen) and evict each other at every step:
// where a tile goes through 8 panels or more, they are copied once per tile, a line more than
// 4 KiB apart (1,024 channels by 256 columns: 51.3–51.6 → 54.1–54.6 GMAC/s on one core;
// through 2 panels the copy cost more than it saved, through 4 about as much).
static int copies_rows(const laq_conv_shape *s) {
    return s->kernel_h == 1 && s->kernel_w == 1 && s->channels * s->stride_w % 1024 == 0;
}

// Kernel rows as taps. Along an output row, a kernel row's taps (dilation 1) read kernel_w
// neighbouring pixels, kernel_w·channels floats in a row of x, which is also their order in K:
// where every tap of a tile is inside the input horizontally, a kernel row is one tap of
// kernel_w·channels channels (its sources those of its first tap, stride_w·channels apart), and
// a kernel row outside the input vertically is skipped as its taps would be (`skips`). The
// chains are the same; a first convolution of 3 channels by 7×7 then spends one tap's work per
// 21 multiply-adds a row instead of per 3 (ResNet50's, MobileNetV2's and EfficientNet's stems).
// Returns the taps (kernel_h) and writes their sources and steps, or returns 0 where the tile
// has a tap outside horizontally (the edges of a row: tile_sources).
static long row_taps(const float *x, const laq_conv_shape *s, long i0, long rows, int skips, const float **sources, long *steps) {
    if (!skips || !aligns_rows(s) || s->kernel_w < 2 || s->dilation_w != 1) return 0;
    const long per_image = s->out_height * s->out_width, ow = i0 % s->out_width;
    if (ow + rows > s->out_width) return 0;
    const long first_column = ow * s->stride_w - s->pad_left, last_column = (ow + rows - 1) * s->stride_w - s->pad_left + s->kernel_w - 1;
    if (first_column < 0 || last_column >= s->width) return 0;
    const long image = i0 / per_image, oh = i0 % per_image / s->out_width;
    const float *base = x + image * s->height * s->width * s->channels;
    long *edges = steps + s->kernel_h;
    for (long th = 0; th < s->kernel_h; th++) {
        const long ih = oh * s->stride_h + th * s->dilation_h - s->pad_top;
        edges[th] = 0;
        if (ih < 0 || ih >= s->height) {
            steps[th] = LAQ_TAP_SKIPPED;
            continue;
        }
        sources[th * 12] = base + (ih * s->width + first_column) * s->channels;
        steps[th] = s->stride_w * s->channels;
    }
    return s->kernel_h;
}

long laq_panels_rows_copy_length(const laq_conv_shape *shape) { return copies_rows(shape) ? 12 * (shape->channels + 16) : 0; }

void laq_panels_convolve(const float *x, const laq_conv_shape *shape, const float *zeros, const float *panels, long n,
                         const laq_epilogue *epilogue, float *c, long row_begin, long row_end, long panel_begin, long panel_end,
                         const float **sources, long *steps, float *rows_copy, int skips, int isa) {
    const long k = shape->kernel_h * shape->kernel_w * shape->channels;
    const int pointwise = is_pointwise(shape);
    const int copy_rows = rows_copy && copies_rows(shape) && panel_end - panel_begin >= 8;
    for (long i0 = row_begin, end; i0 < row_end; i0 = end) {
        end = tile_end(shape, i0, isa) < row_end ? tile_end(shape, i0, isa) : row_end;
        const long rows = end - i0;
        // The tile's taps: kernel rows where it may (row_taps), else the kernel's.
        long taps = row_taps(x, shape, i0, rows, skips, sources, steps), channels = shape->channels * shape->kernel_w;
        if (taps == 0) {
            tile_sources(x, shape, zeros, i0, rows, skips, sources, steps);
            taps = shape->kernel_h * shape->kernel_w;
            channels = shape->channels;
        }
        const long *edges = steps + taps;
        if (copy_rows) {
            const long stride = channels + 16;
            for (long r = 0; r < rows; r++)
                memcpy(rows_copy + r * stride, steps[0] >= 0 ? sources[0] + r * steps[0] : sources[r], sizeof(float) * (size_t)channels);
            sources[0] = rows_copy;
            steps[0] = stride;
        }
        float *tile = c + i0 * n;
        const float *residual = epilogue->residual ? epilogue->residual + i0 * n : 0;
#if defined(__x86_64__)
        // A pointwise convolution of many positions streams its input from memory, 12 short
        // runs at a time, which the hardware does not follow: the next tile's input rows are
        // asked for into L2 as this tile's chains go, a line per step (64 or more channels;
        // with 32 fetching cost more than it saved). All at the tile's start, most of them
        // were dropped (256 → 64 channels over 50,176 positions on one core: 19.5–19.8 ms,
        // spread 16.6–17.0; 144 → 24 6.2–7.0 → 4.8–5.2 ms); into L1, no faster than none.
        const char *ahead = 0;
        long ahead_bytes = 0;
        if (pointwise && channels >= 64 && i0 + TILE_ROWS < row_end) {
            const long next_end = i0 + 2 * TILE_ROWS < row_end ? i0 + 2 * TILE_ROWS : row_end;
            ahead = (const char *)(x + (i0 + TILE_ROWS) * channels);
            ahead_bytes = (next_end - (i0 + TILE_ROWS)) * channels * (long)sizeof(float);
        }
        if (isa >= LAQ_ISA_AVX512) {
            conv_panels_avx512(sources, steps, taps, channels, panels, n, epilogue, tile, residual, rows, panel_begin, panel_end, ahead,
                               ahead_bytes);
            continue;
        }
        if (isa >= LAQ_ISA_AVX2) {
            conv_panels_avx2(sources, steps, taps, channels, panels, n, epilogue, tile, residual, rows, panel_begin, panel_end, ahead,
                             ahead_bytes);
            continue;
        }
#endif
        // The same chains in scalar code: Σ over the taps taken and their channels by fmaf in
        // order, then the epilogue.
        for (long p = panel_begin; p < panel_end; p++) {
            const long first = p * PANEL, width = n - first < PANEL ? n - first : PANEL;
            const float *w = panels + (p - panel_begin) * k * PANEL;
            for (long r = 0; r < rows; r++)
                for (long j = 0; j < width; j++) {
                    float sum = 0;
                    for (long tap = 0; tap < taps; tap++) {
                        const long lo = edges[tap] & 1, cut = edges[tap] >> 1, t0 = tap * channels;
                        if (steps[tap] == LAQ_TAP_SKIPPED || (steps[tap] >= 0 && (r < lo || r >= rows - cut))) continue;
                        const float *a = steps[tap] >= 0 ? sources[tap * 12] + (r - lo) * steps[tap] : sources[tap * 12 + r];
                        for (long ch = 0; ch < channels; ch++) sum = __builtin_fmaf(a[ch], w[laq_panel_offset(k, t0 + ch, j, isa)], sum);
                    }
                    const float v = epilogue_scalar(sum, epilogue, first + j);
                    tile[r * n + first + j] = residual ? epilogue_residual_scalar(v, epilogue, residual[r * n + first + j]) : v;
                }
        }
    }
    (void)isa;
}
