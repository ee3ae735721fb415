// 3×3 convolutions with unit strides by Winograd's minimal filtering F(2×2, 3×3) (Lavin and
// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). A 2×2 block of outputs is
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
// where d is the 4×4 input tile the block reads, g a filter's 3×3 kernel and
//     Bᵀ = | 1  0 −1  0 |    G = | 1    0    0  |    Aᵀ = | 1  1  1  0 |
//          | 0  1  1  0 |        | ½    ½    ½  |         | 0  1 −1 −1 |
//          | 0 −1  1  0 |        | ½   −½    ½  |
//          | 0  1  0 −1 |        | 0    0    1  |
// Summed over input channels, the 16 products ⊙ become 16 matrix products (one per point ξ of
// the 4×4 transform): M_ξ = V_ξ · U_ξ, V_ξ (tiles × channels) the transformed inputs, U_ξ
// (channels × filters) the transformed kernel. That is 16 multiply-adds per tile and channel
// pair where the direct convolution takes 4·9 = 36: 2.25 times fewer.
//
// Bᵀ and Aᵀ hold only ±1 and 0: the input and output transforms are sums and differences, in the
// order written below, the same on every instruction set. U is computed once, at load, in double
// and rounded once (½ is exact). The products are laq_panel_multiply's chains (U packed as 16
// panelled matrices), so every output is the same function of the input whatever the split of
// tiles and panels between threads, and on every instruction set. The bits differ from the
// direct convolution's (laq_panels_convolve): the sums are taken in another order, with error of
// the same order (the transforms' coefficients are all 1 and ½).
//
// Tiles. Tile t of an image covers outputs (2·ty + r, 2·tx + s), r, s ∈ {0, 1}, ty < ⌈OH/2⌉,
// tx < ⌈OW/2⌉, tiles in row-major order, image after image; it reads input rows 2·ty − pad_top
// to + 3 and columns 2·tx − pad_left to + 3, zeros outside the input. Outputs past OH or OW are
// computed and not stored.
#include "laq_kernels.h"
#include "lanes.h"
#include "epilogue.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { PANEL = 32, POINTS = 16, BLOCK_SMALL = 48, BLOCK_LARGE = 24 };

int laq_winograd_applies(const laq_conv_shape *s) {
    return s->kernel_h == 3 && s->kernel_w == 3 && s->stride_h == 1 && s->stride_w == 1 && s->dilation_h == 1 && s->dilation_w == 1 &&
           s->out_height > 0 && s->out_width > 0 && s->channels > 0;
}

long laq_winograd_length(long channels, long filters) { return POINTS * laq_panels_length(channels, filters); }

void laq_winograd_transform_kernel(const float *kernel, long channels, long filters, float *u) {
    const long plane = channels * filters;
    for (long c = 0; c < channels; c++)
        for (long f = 0; f < filters; f++) {
            double g[3][3], gg[4][3];
            for (int th = 0; th < 3; th++)
                for (int tw = 0; tw < 3; tw++) g[th][tw] = kernel[(th * 3 + tw) * plane + c * filters + f];
            // G·g: rows g₀, (g₀ + g₁ + g₂)/2, (g₀ − g₁ + g₂)/2, g₂.
            for (int tw = 0; tw < 3; tw++) {
                gg[0][tw] = g[0][tw];
                gg[1][tw] = (g[0][tw] + g[1][tw] + g[2][tw]) * 0.5;
                gg[2][tw] = (g[0][tw] - g[1][tw] + g[2][tw]) * 0.5;
                gg[3][tw] = g[2][tw];
            }
            // (G·g)·Gᵀ: the same combinations of each row's columns.
            for (int r = 0; r < 4; r++) {
                const double *row = gg[r];
                const double point[4] = {row[0], (row[0] + row[1] + row[2]) * 0.5, (row[0] - row[1] + row[2]) * 0.5, row[2]};
                for (int s = 0; s < 4; s++) u[(r * 4 + s) * plane + c * filters + f] = (float)point[s];
            }
        }
}

long laq_winograd_tile_count(const laq_conv_shape *s, long images) { return images * ((s->out_height + 1) / 2) * ((s->out_width + 1) / 2); }

long laq_winograd_block_tiles(long channels) { return channels <= 128 ? BLOCK_SMALL : BLOCK_LARGE; }

long laq_winograd_workspace_length(long channels) {
    const long block = laq_winograd_block_tiles(channels);
    return POINTS * block * channels + POINTS * block * PANEL + channels;
}

// Tile t's image and place: t = (image·⌈OH/2⌉ + ty)·⌈OW/2⌉ + tx.
typedef struct {
    long image, ty, tx;
} tile_index;

static tile_index locate(const laq_conv_shape *s, long t) {
    const long across = (s->out_width + 1) / 2, per_image = across * ((s->out_height + 1) / 2);
    return (tile_index){t / per_image, t % per_image / across, t % across};
}

// The 16 sources of tile t's 4×4 input, `zeros` where outside the input.
typedef struct {
    const float *source[POINTS];
} tile_sources;

static tile_sources sources_of(const float *x, const laq_conv_shape *s, const float *zeros, long t) {
    const tile_index at = locate(s, t);
    tile_sources p;
    for (long r = 0; r < 4; r++) {
        const long ih = 2 * at.ty - s->pad_top + r;
        for (long q = 0; q < 4; q++) {
            const long iw = 2 * at.tx - s->pad_left + q;
            p.source[r * 4 + q] = ih < 0 || ih >= s->height || iw < 0 || iw >= s->width
                                      ? zeros
                                      : x + ((at.image * s->height + ih) * s->width + iw) * s->channels;
        }
    }
    return p;
}

// Tile t's first output position, and how many of its rows and columns lie inside the output.
typedef struct {
    long first, rows, columns;
} tile_outputs;

static tile_outputs outputs_of(const laq_conv_shape *s, long t) {
    const tile_index at = locate(s, t);
    return (tile_outputs){(at.image * s->out_height + 2 * at.ty) * s->out_width + 2 * at.tx, s->out_height - 2 * at.ty < 2 ? 1 : 2,
                          s->out_width - 2 * at.tx < 2 ? 1 : 2};
}

// Bᵀ·d·B of one channel: the rows' combinations, then the columns'.
#define LAQ_WINO_INPUT(T, LOAD, STORE, ADD, SUB)                                                     \
    do {                                                                                             \
        T d_[16], s_[16];                                                                            \
        for (int i_ = 0; i_ < 16; i_++) d_[i_] = LOAD(i_);                                           \
        for (int q_ = 0; q_ < 4; q_++) {                                                             \
            s_[0 * 4 + q_] = SUB(d_[0 * 4 + q_], d_[2 * 4 + q_]);                                    \
            s_[1 * 4 + q_] = ADD(d_[1 * 4 + q_], d_[2 * 4 + q_]);                                    \
            s_[2 * 4 + q_] = SUB(d_[2 * 4 + q_], d_[1 * 4 + q_]);                                    \
            s_[3 * 4 + q_] = SUB(d_[1 * 4 + q_], d_[3 * 4 + q_]);                                    \
        }                                                                                            \
        for (int r_ = 0; r_ < 4; r_++) {                                                             \
            STORE(r_ * 4 + 0, SUB(s_[r_ * 4 + 0], s_[r_ * 4 + 2]));                                  \
            STORE(r_ * 4 + 1, ADD(s_[r_ * 4 + 1], s_[r_ * 4 + 2]));                                  \
            STORE(r_ * 4 + 2, SUB(s_[r_ * 4 + 2], s_[r_ * 4 + 1]));                                  \
            STORE(r_ * 4 + 3, SUB(s_[r_ * 4 + 1], s_[r_ * 4 + 3]));                                  \
        }                                                                                            \
    } while (0)

// Aᵀ·m·A of one column: the rows' combinations (m₀ + m₁) + m₂ and (m₁ − m₂) − m₃, then the
// columns'; y[r·2 + s] is output (r, s) of the tile.
#define LAQ_WINO_OUTPUT(T, LOAD, ADD, SUB, y)                                                        \
    do {                                                                                             \
        T m_[16], a_[8];                                                                             \
        for (int i_ = 0; i_ < 16; i_++) m_[i_] = LOAD(i_);                                           \
        for (int q_ = 0; q_ < 4; q_++) {                                                             \
            a_[0 * 4 + q_] = ADD(ADD(m_[0 * 4 + q_], m_[1 * 4 + q_]), m_[2 * 4 + q_]);               \
            a_[1 * 4 + q_] = SUB(SUB(m_[1 * 4 + q_], m_[2 * 4 + q_]), m_[3 * 4 + q_]);               \
        }                                                                                            \
        for (int r_ = 0; r_ < 2; r_++) {                                                             \
            (y)[r_ * 2 + 0] = ADD(ADD(a_[r_ * 4 + 0], a_[r_ * 4 + 1]), a_[r_ * 4 + 2]);              \
            (y)[r_ * 2 + 1] = SUB(SUB(a_[r_ * 4 + 1], a_[r_ * 4 + 2]), a_[r_ * 4 + 3]);              \
        }                                                                                            \
    } while (0)

#define LAQ_ADD1(a, b) ((a) + (b))
#define LAQ_SUB1(a, b) ((a) - (b))

// V[ξ][b][c] for the tiles [first, first + count) (b from 0), channel by channel.
static void input_scalar(const float *x, const laq_conv_shape *s, const float *zeros, long first, long count, float *v) {
    const long channels = s->channels, stride = count * channels;
    for (long b = 0; b < count; b++) {
        const tile_sources p = sources_of(x, s, zeros, first + b);
        float *out = v + b * channels;
        for (long c = 0; c < channels; c++) {
#define LOAD_(i) p.source[i][c]
#define STORE_(i, value) out[(i) * stride + c] = (value)
            LAQ_WINO_INPUT(float, LOAD_, STORE_, LAQ_ADD1, LAQ_SUB1);
#undef LOAD_
#undef STORE_
        }
    }
}

// Outputs of the tiles [first, first + count) in columns [j0, j0 + width) from M[ξ][b][j − j0]
// (row stride PANEL), through the epilogue, to C (row stride n).
static void output_scalar(const laq_conv_shape *s, const float *m, long first, long count, long j0, long width,
                          long n, const laq_epilogue *e, float *c) {
    const long stride = count * PANEL;
    for (long b = 0; b < count; b++) {
        const tile_outputs p = outputs_of(s, first + b);
        const float *in = m + b * PANEL;
        for (long j = 0; j < width; j++) {
            float y[4];
#define LOAD_(i) in[(i) * stride + j]
            LAQ_WINO_OUTPUT(float, LOAD_, LAQ_ADD1, LAQ_SUB1, y);
#undef LOAD_
            for (long r = 0; r < p.rows; r++)
                for (long q = 0; q < p.columns; q++) {
                    const long at = (p.first + r * s->out_width + q) * n + j0 + j;
                    float value = epilogue_scalar(y[r * 2 + q], e, j0 + j);
                    if (e->residual) value = epilogue_residual_scalar(value, e, e->residual[at]);
                    c[at] = value;
                }
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void input_avx2(const float *x, const laq_conv_shape *s, const float *zeros, long first, long count,
                                                          float *v) {
    const long channels = s->channels, stride = count * channels;
    for (long b = 0; b < count; b++) {
        const tile_sources p = sources_of(x, s, zeros, first + b);
        float *out = v + b * channels;
        long c = 0;
        for (; c + 8 <= channels; c += 8) {
#define LOAD_(i) _mm256_loadu_ps(p.source[i] + c)
#define STORE_(i, value) _mm256_storeu_ps(out + (i) * stride + c, (value))
            LAQ_WINO_INPUT(__m256, LOAD_, STORE_, _mm256_add_ps, _mm256_sub_ps);
#undef LOAD_
#undef STORE_
        }
        if (c < channels) {
            const __m256i mask = laq_lanes8(channels - c);
#define LOAD_(i) _mm256_maskload_ps(p.source[i] + c, mask)
#define STORE_(i, value) _mm256_maskstore_ps(out + (i) * stride + c, mask, (value))
            LAQ_WINO_INPUT(__m256, LOAD_, STORE_, _mm256_add_ps, _mm256_sub_ps);
#undef LOAD_
#undef STORE_
        }
    }
}

// Eight columns from j0 + j (the lanes of `mask`, all of them where `full`).
__attribute__((target("avx2,fma"), always_inline)) static inline void output_avx2_columns(const laq_conv_shape *s, const tile_outputs *p,
                                                                                         const float *in, long stride, long j0, long j, long n,
                                                                                         const laq_epilogue *e, float *c, __m256i mask,
                                                                                         const int full) {
    __m256 y[4];
#define LOAD_(i) LAQ_LOAD8(in + (i) * stride + j, mask, full)
    LAQ_WINO_OUTPUT(__m256, LOAD_, _mm256_add_ps, _mm256_sub_ps, y);
#undef LOAD_
    const epilogue_columns8 columns = epilogue_columns_avx2(e, j0 + j, mask, full);
    for (long r = 0; r < p->rows; r++)
        for (long q = 0; q < p->columns; q++) {
            const long at = (p->first + r * s->out_width + q) * n + j0 + j;
            __m256 value = epilogue_apply_avx2(y[r * 2 + q], &columns);
            if (e->residual) value = epilogue_residual_avx2(value, e, &columns, e->residual + at, mask, full);
            LAQ_STORE8(c + at, mask, value, full);
        }
}

__attribute__((target("avx2,fma"))) static void output_avx2(const laq_conv_shape *s, const float *m, long first, long count, long j0,
                                                           long width, long n, const laq_epilogue *e, float *c) {
    const long stride = count * PANEL;
    for (long b = 0; b < count; b++) {
        const tile_outputs p = outputs_of(s, first + b);
        const float *in = m + b * PANEL;
        long j = 0;
        for (; j + 8 <= width; j += 8) output_avx2_columns(s, &p, in, stride, j0, j, n, e, c, laq_lanes8(8), 1);
        if (j < width) output_avx2_columns(s, &p, in, stride, j0, j, n, e, c, laq_lanes8(width - j), 0);
    }
}
#endif

void laq_winograd_convolve(const float *x, const laq_conv_shape *s, const float *u, long n, const laq_epilogue *e, float *c, long tile_begin,
                           long tile_end, long panel_begin, long panel_end, float *workspace, int isa) {
    const long channels = s->channels, block = laq_winograd_block_tiles(channels), length = laq_panels_length(channels, n);
    float *v = workspace, *m = v + POINTS * block * channels, *zeros = m + POINTS * block * PANEL;
    memset(zeros, 0, sizeof(float) * (size_t)channels);
    // Blocks of near-equal length (ResNet50's 49 tiles at 14² as 16 + 16 + 17, not 24 + 24 + 1).
    const long tiles = tile_end - tile_begin, blocks = (tiles + block - 1) / block;
    for (long index = 0; index < blocks; index++) {
        const long first = tile_begin + index * tiles / blocks, count = tile_begin + (index + 1) * tiles / blocks - first;
#if defined(__x86_64__)
        if (isa >= LAQ_ISA_AVX2) input_avx2(x, s, zeros, first, count, v);
        else
#endif
            input_scalar(x, s, zeros, first, count, v);
        for (long panel = panel_begin; panel < panel_end; panel++) {
            const long j0 = panel * PANEL, width = n - j0 < PANEL ? n - j0 : PANEL;
            for (long point = 0; point < POINTS; point++)
                laq_panel_multiply(v + point * count * channels, channels, u + point * length + panel * channels * PANEL, channels, width,
                                   m + point * count * PANEL, PANEL, 0, count, 0, isa);
#if defined(__x86_64__)
            if (isa >= LAQ_ISA_AVX2) output_avx2(s, m, first, count, j0, width, n, e, c);
            else
#endif
                output_scalar(s, m, first, count, j0, width, n, e, c);
        }
    }
}
