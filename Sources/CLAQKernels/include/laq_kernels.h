// laq's C for LAQEngine: hand-vectorised kernels (plane-matrix products, Adam's update), CPU
// detection, an allocator setting and the engine's worker thread. The one place LAQEngine runs C.
//
// Plane matrices. A K×N matrix (row-major, the last axis the output) of codes is held as P ≤ 4
// bit planes, blocked by 64 output columns so that a kernel streams them: the 64-bit word for
// block b, row k, plane p is at
//     planes[(b·K + k)·P + p],   bit j ↔ column n = 64·b + j.
// Columns past N (in the last block) have no bits set. Three kinds of planes (`kind`):
//   LAQ_PLANES_ONE_HOT (L ≤ 3 codes): plane p marks the elements whose code is p + 1;
//   LAQ_PLANES_BITS: plane p holds bit p of each code (code = Σ_p 2^p · bit_p);
//   LAQ_PLANES_SIGNED (levels ±m₁ … ±m_M and 0, P = M + 1): plane 0 marks the negative
//   elements, plane m the elements of magnitude m (one-hot; none for a zero).
// Dot planes (below) are one-hot or bits (`one_hot` 1 or 0).
//
// Levels are given per column, blocked like the planes so that a block's table is contiguous
// (4 KiB at most: it stays in L1 while the block's rows stream):
//     levels[(b·C + c)·64 + j] = level of code c in column n = 64·b + j,
// with C = P + 1 codes for one-hot planes, 2^P for bits, P for signed planes (row 0: zero, row m:
// magnitude m); codes that never occur and columns past N: any finite value. Per-tensor tables
// are repeated across columns. The SIMD kernels sum x over each plane and combine with sum
// levels L (C = P + 1, same layout):
//     y[n] = L₀[n]·(Σ_k x[k] − Σ_p S_p[n]) + Σ_p L_{p+1}[n]·S_p[n],  S_p[n] = Σ_{k: bit_p(k, n)} x[k],
// which is the product when L = levels (one-hot), or when levels are affine in the code,
// level(c) = l₀ + c·step, and L₀ = l₀, L_{p+1} = l₀ + 2^p·step (bits). Signed planes sum the
// signed input (−x where plane 0 is set) over the magnitude planes; L₀ = L₁ = 0, L_{m+1} = m_m.
#ifndef LAQ_KERNELS_H
#define LAQ_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The most planes a plane matrix has.
#define LAQ_MAX_PLANES 4

/// Kinds of planes (see above).
enum {
    LAQ_PLANES_BITS = 0,
    LAQ_PLANES_ONE_HOT = 1,
    LAQ_PLANES_SIGNED = 2,
};

/// Instruction sets a kernel can use.
enum {
    LAQ_ISA_SCALAR = 0,
    LAQ_ISA_AVX2 = 1,    // AVX2 + FMA
    LAQ_ISA_AVX512 = 2,  // AVX-512 F
    LAQ_ISA_AVX512_VNNI = 3,  // AVX-512 F, BW and VNNI
    LAQ_ISA_AVX512_GFNI = 4,  // and AVX-512 VBMI and GFNI (bit-plane transposes)
};

/// The best instruction set this CPU and its operating system support (CPUID and XGETBV).
int laq_kernels_best_isa(void);

/// C[r][n] = Σ_k A[r][k] · levels[code(k, n)][n] (+ C[r][n] when `accumulate`), for rows r < m
/// and the columns of blocks [block_begin, block_end): with AVX2 and AVX-512 through the plane
/// sums and `sum_levels`; in scalar code term by term over k in order, zeros of A skipped
/// (their terms are ±0, the levels being finite). `isa` must be at most `laq_kernels_best_isa()`.
void laq_planes_multiply(const float *a, long lda, long m, long k, long n,
                         const uint64_t *planes, int plane_count, int kind, const float *levels, const float *sum_levels,
                         float *c, long ldc, int accumulate,
                         long block_begin, long block_end, int isa);

/// Rows [row_begin, row_end) of the matrix as floats, row-major: out[(r − row_begin)·N + n].
void laq_planes_decode_rows(const uint64_t *planes, int plane_count, int kind, long k, long n, const float *levels,
                            long row_begin, long row_end, float *out, int isa);

/// Panel p of the matrix (columns 32p…32p+31) in the layout of `laq_panels_pack` for `isa`:
/// out[laq_panel_offset(k, t, j, isa)] = W[t][32p + j] for t < k (k·32 floats), each value the
/// level itself; columns past n hold their table's finite entries, which no panel product stores.
void laq_planes_decode_panel(const uint64_t *planes, int plane_count, int kind, long k, long n, const float *levels,
                             long panel, float *out, int isa);

/// out[i − start] = levels[code(i)][column(i)] for row-major elements i ∈ [start, start + count).
void laq_planes_decode(const uint64_t *planes, int plane_count, int kind, long k, long n, const float *levels,
                       long start, long count, float *out);

/// What a convolution's sum goes through before it is stored, output channel j by j: + bias[j]
/// (when not NULL), then (when `scale` is not NULL) v·scale[j] + shift[j] and the ReLU, as
/// laq_scale_shift computes them (an inference BatchNormalization and the ReLU after it; `relu`
/// is one of LAQ_RELU_*). Then, when `residual` is not NULL (laq_panels_convolve and the
/// dot-plane row products; the depthwise kernel ignores these last fields): a residual
/// connection's Add, residual[i·n + j] + v when `residual_first` (the order of the Add's inputs),
/// else v + residual[i·n + j], for output position i of n columns (row stride ldc, where the
/// output has one: residual[i·ldc + j]), and the ReLU after it (`after_relu`, with its own
/// parameters).
/// `residual` may be the output itself (the output then written over it): each of its values
/// is read before the output is stored in its place, and by the tile that stores it only.
typedef struct {
    const float *bias;
    const float *scale;
    const float *shift;
    int relu;
    float threshold, slope, ceiling;
    const float *residual;
    int residual_first;
    int after_relu;
    float after_threshold, after_slope, after_ceiling;
} laq_epilogue;

// Dot planes: one-hot or bit planes for products with int8 activations, laid out for 4-way
// byte dot products. A word covers 64 bits = 16 output columns × 4 consecutive rows:
//     planes[((b·K4 + g)·P + p)·4 + s],  K4 = ⌈K/4⌉, block b of 64 columns, sub-block s,
//     bit 4·j + i ↔ row k = 4·g + i, column n = 64·b + 16·s + j.
// Rows past K and columns past N have no bits set.

/// q[i] = round(x[i] / scale) for i < k (to nearest, ties to even, clamped to ±127), zero up to
/// k4·4, with scale = max|x| / 127 (0 when x is all zero); total = Σ q. Returns 0, with q
/// untouched, when x holds a NaN or infinity. Every `isa` gives the same bits.
int laq_int8_quantize(const float *x, long k, long k4, int8_t *q, float *scale, int32_t *total, int isa);

/// Bytes of one group's lookup table (below).
#define LAQ_INT8_TABLE_BYTES 32

/// With AVX2 and without VNNI, a product of one row looks each plane nibble's sum (a column's 4
/// rows) up in a table of its group's 16 subset sums. The bytes of a row's tables on `isa`:
/// k4·LAQ_INT8_TABLE_BYTES, or 0 where it does not look sums up.
long laq_int8_table_bytes(long k4, int isa);

/// Builds the tables of quantized row q (laq_int8_table_bytes of them; nothing where that is 0)
/// for the one-row kernels below to share (`tables`). A kernel given NULL builds its own: on the
/// stack up to 512 groups, on the heap beyond.
void laq_int8_tables(const int8_t *q, long k4, uint8_t *tables, int isa);

/// c[n] (+)= scale · (L₀[n]·(total − Σ_p S_p[n]) + Σ_p L_{p+1}[n]·S_p[n]), S_p[n] = Σ_{k: bit_p(k, n)}
/// q[k], with the sum levels L, for the columns of blocks [block_begin, block_end). The sums
/// are exact int32, so every instruction set gives the same bits. `tables`: the row's
/// laq_int8_tables, or NULL (so for the functions below).
void laq_dot_planes_multiply(const int8_t *q, long k4, float scale, int32_t total, long n,
                             const uint64_t *planes, int plane_count, const float *sum_levels,
                             float *c, int accumulate, const uint8_t *tables, long block_begin, long block_end, int isa);

/// laq_dot_planes_multiply for m rows of A at once (row r: q + r·stride, its scale and total):
/// with AVX-512 VNNI, tiles of up to 24/P rows share each expansion of plane bits to bytes, so a
/// batch costs about one dot product per 64 weights, plane and row (AVX2: tiles of up to 12/P
/// rows, one VPMADDUBSW and one int16 add per 32 weights, plane and row). Row r of C at c + r·ldc.
/// With `pair_levels` (symmetric ternary, see below; else NULL) the rows combine as
/// laq_dot_planes_multiply_signed_pair does, and tiles of up to 24 rows take one dot product per
/// 64 weights and row (AVX2: 12 rows, one VPMADDUBSW per 32 weights and row; bytes
/// w + 1 ∈ {0, 1, 2} by q, less the row's total: each row's q must be
/// zero from k to 4·k4, as laq_int8_quantize leaves it, and total its sum). The same bits as m
/// calls of the one-row kernel, on every `isa`. With an `epilogue` (else NULL; `accumulate`
/// then 0), each output goes through it before it is stored: the bits of the product and then
/// the epilogue's passes, its residual (which may be c itself) read at the output's offset.
void laq_dot_planes_multiply_rows(const int8_t *q, long stride, long m, const float *scales, const int32_t *totals, long k4,
                                  long n, const uint64_t *planes, int plane_count, const float *sum_levels,
                                  const float *pair_levels, float *c,
                                  long ldc, int accumulate, const laq_epilogue *epilogue, long block_begin, long block_end, int isa);

/// Symmetric ternary dot planes (P = 2, one-hot, levels +L[n] for plane 0, −L[n] for plane 1,
/// 0 for the rest): c[n] (+)= scale · (L[n] · D[n]), D[n] = Σ_{k: plane 0} q[k] − Σ_{k: plane 1}
/// q[k], exact int32 (on AVX-512 VNNI the planes select ±q bytes, and one byte dot product per
/// word pair adds them: half the dot products of laq_dot_planes_multiply). `levels`: L per
/// column (N). Every `isa` gives the same bits.
void laq_dot_planes_multiply_signed_pair(const int8_t *q, long k4, float scale, long n, const uint64_t *planes,
                                         const float *levels, float *c, int accumulate, const uint8_t *tables,
                                         long block_begin, long block_end, int isa);

/// Bit dot planes (codes affine in every column: level(c) = offsets[n] + c·steps[n]), m rows of A
/// (row r: q + r·stride, its scale and total Σ q): c[r][n] (+)= scale_r · (offsets[n]·total_r +
/// steps[n]·C_r[n]), C_r[n] = Σ_k code(k, n)·q_r[k], exact int32 while 15·127·4·k4 < 2³¹ (the
/// caller's bound), for the columns of blocks [block_begin, block_end). With AVX-512 VNNI each
/// word set's code bytes (masked adds, or with VBMI and GFNI a byte permutation and a bit
/// transpose) serve a tile of up to 24 rows: one dot product per 64 weights and row (AVX2: 12
/// rows, one VPMADDUBSW per 32 weights and row, the codes made by Horner's rule). Every `isa`,
/// and any m, gives the same bits. `epilogue` as laq_dot_planes_multiply_rows; `tables` (m = 1
/// only, else NULL) as laq_dot_planes_multiply.
void laq_dot_codes_multiply_rows(const int8_t *q, long stride, long m, const float *scales, const int32_t *totals, long k4,
                                 long n, const uint64_t *planes, int plane_count, const float *offsets, const float *steps,
                                 float *c, long ldc, int accumulate, const laq_epilogue *epilogue, const uint8_t *tables,
                                 long block_begin, long block_end, int isa);

/// out[i − start] = levels[code(i)][column(i)] for row-major elements i ∈ [start, start + count).
void laq_dot_planes_decode(const uint64_t *planes, int plane_count, int one_hot, long k, long n, const float *levels,
                           long start, long count, float *out);

/// Max pooling over channels-last images x (batch × height × width × channels): for each
/// output position (n, oh, ow) and channel c, out = the maximum over the window's taps, rows
/// ih = oh·rows_stride + th − rows_pad (th < rows_kernel), likewise columns; the first tap is
/// taken whatever its value, later ones when strictly greater (so the first maximum in tap order
/// wins, as TensorFlow's gradient takes it). A tap outside the image is skipped, or, when `zeros`
/// is not NULL (at least `channels` zeros: a ZeroPadding2D folded into a `valid` pooling), takes
/// part with the value 0 in its place in tap order. argmax (may be NULL; NULL when `zeros` is
/// not) gets the input index of that tap; a window with no tap gives −∞ and −1. out and argmax:
/// batch × rows_out × cols_out × channels, of which the output rows [row_begin, row_end) of the
/// batch × rows_out are written (x, out and argmax point at the whole batch, and argmax indexes
/// the whole of x). Every `isa` gives the same values and indices.
void laq_max_pool(const float *x, long row_begin, long row_end, long height, long width, long channels,
                  long rows_out, long rows_kernel, long rows_stride, long rows_pad,
                  long cols_out, long cols_kernel, long cols_stride, long cols_pad,
                  const float *zeros, float *out, long *argmax, int isa);

/// Rows [0, rows) of C (+)= A·B for a short inner dimension: A rows × k (row stride lda), B k × n
/// (ldb), C rows × n (ldc), k ≤ 16 and n ≤ 64 (a convolution over one input channel). Each
/// output is Σ_t a[i, t]·b[t, j] in t order (fused multiply-adds on AVX-512).
void laq_short_inner_product(const float *a, long lda, const float *b, long ldb, float *c, long ldc, long rows, long k,
                             long n, int accumulate, int isa);

/// C = Aᵀ·B over `rows` rows: A rows × m (lda), B rows × n (ldb), C m × n (dense, overwritten),
/// m ≤ 16 and n ≤ 64 (the kernel gradient of such a convolution). Sums in row order.
void laq_long_inner_product(const float *a, long lda, const float *b, long ldb, float *c, long m, long rows, long n,
                            int isa);

/// Keras' Adam step on n elements, in place: with grad = g·scale,
///     m += (grad − m)·(1 − β₁);  v += (grad² − v)·(1 − β₂);  w −= α·m / (√v + ε)
/// in float32, each operation rounded (no fused multiply-adds): every `isa` gives the same bits.
void laq_adam_update(float *w, float *m, float *v, const float *g, long n, float scale, float beta1, float beta2,
                     float alpha, float epsilon, int isa);

/// glibc: allocations of up to `largest` bytes come from the heap, and freed ones stay there
/// for reuse (mmap threshold `largest`, trim threshold 4×, top pad ½×). Returns 1 when set, 0
/// where the C library is not glibc.
int laq_keep_freed_blocks(long largest);

/// Depthwise 2-D convolution, NHWC: output rows [row_begin, row_end) of the batch × out_h rows
/// (each out_w × channels·multiplier values, overwritten) from input (batch × height × width ×
/// channels) and kernel (kernel_h × kernel_w × channels × multiplier), through `epilogue` (its
/// bias one value per output channel). Input row of output row oh, tap th: oh·stride_h +
/// th·dilation_h − pad_top (columns alike); taps outside the input are skipped. Sums taps in
/// order from 0, then the epilogue, as the scalar definition does (the same bits on every
/// instruction set).
void laq_depthwise_conv2d(const float *input, long height, long width, long channels, const float *kernel, long kernel_h,
                          long kernel_w, long multiplier, long stride_h, long stride_w, long dilation_h, long dilation_w,
                          long pad_top, long pad_left, long out_h, long out_w, float *output, long row_begin, long row_end,
                          const laq_epilogue *epilogue, int isa);

/// The logistic sigmoid σ(x) = 1/(1 + e^−x), as sigmoid.c computes it: from e = exp(−|x|) by a
/// range reduction and a polynomial (within a few ulp of σ), 1/(1 + e) for x ≥ 0 and e/(1 + e)
/// below; 0 where −|x| < −87.33; a NaN stays NaN. The array functions give these same bits on
/// every instruction set.
float laq_sigmoidf(float x);

/// values[i] = laq_sigmoidf(values[i]), in place.
void laq_sigmoid(float *values, long count, int isa);

/// values[i] = values[i] · laq_sigmoidf(values[i]) (swish, SiLU), in place.
void laq_swish(float *values, long count, int isa);

/// erf(x) as gelu.c computes it: x·P(x²)/Q(x²) on x clamped to [−4, 4] (Eigen's and TensorFlow's
/// float erf), within 4.2·10⁻⁷ of erf; a NaN stays NaN.
float laq_erff(float x);

/// Keras' exact GELU, (0.5·x)·(1 + laq_erff(x·(1/√2))). The array function gives these same bits on
/// every instruction set.
float laq_geluf(float x);

/// values[i] = laq_geluf(values[i]), in place.
void laq_gelu(float *values, long count, int isa);

/// The ReLU laq_scale_shift applies after the affine map.
enum {
    LAQ_RELU_NONE = 0,
    LAQ_RELU_MAX0 = 1,   // 0 ≥ v ? 0 : v (Swift's max(v, 0): NaN stays NaN, −0 becomes +0)
    LAQ_RELU_KERAS = 2,  // y = v ≥ threshold ? v : slope·(v − threshold); y > ceiling ? ceiling : y
};

/// y[r·C + c] = relu(x[r·C + c]·scale[c] + shift[c]) for `rows` rows of C = `channels` values
/// (x may be y): the product rounded, then the sum rounded (no fused multiply-add), then the
/// ReLU by the comparisons its definition states, so every instruction set gives the scalar
/// definition's bits. An inference BatchNormalization, alone or with the ReLU that follows it.
void laq_scale_shift(const float *x, float *y, long rows, long channels, const float *scale, const float *shift, int relu,
                     float threshold, float slope, float ceiling, int isa);

/// sums[j] = Σ_r a[r·width + j] for columns first ≤ j < end, each column added in row order
/// from 0 (the same bits on every instruction set): a bias's gradient.
void laq_column_sums(const float *a, long rows, long width, long first, long end, float *sums, int isa);

/// out[i] = g[i] · (z[i] > 0 ? 1 : 0): ReLU's backward pass (the same bits on every instruction set).
void laq_relu_gradient(const float *g, const float *z, float *out, long count, int isa);

/// The floats `laq_panels_pack` writes for a k×n matrix: n rounded up to 32, times k.
long laq_panels_length(long k, long n);

/// Where column j < 32 of row t < k lies in a panel of k rows (k·32 floats) for instruction set
/// `isa`: t·32 + j with AVX-512; otherwise each 16-column half a block of k rows of 16 floats,
/// (j / 16)·k·16 + t·16 + j % 16. The layout of every panel the functions below take or write
/// for that instruction set.
long laq_panel_offset(long k, long t, long j, int isa);

/// Packs the row-major k×n matrix `w` into panels of 32 columns (zeros past n) for instruction set
/// `isa`: panel p, at p·k·32, holds rows t = 0…k−1 of columns 32p…32p+31 (laq_panel_offset).
void laq_panels_pack(const float *w, long k, long n, float *panels, int isa);

/// C[i][32p + j] = Σ_t A[i][t]·W[t][32p + j] (+ C[i][32p + j] when `accumulate`) for rows
/// row_begin ≤ i < row_end and the columns of panel p, A row-major with row stride `lda`, C
/// with `ldc`. Each element is one chain of fused multiply-adds over t in order from 0, then
/// C's value added: the same bits on every instruction set and for any split of rows and panels.
void laq_panels_multiply(const float *a, long lda, const float *panels, long k, long n, float *c, long ldc, long row_begin,
                         long row_end, long panel, int accumulate, int isa);

/// The same product with one panel of `width` ≤ 32 columns (k·32 floats, laq_panel_offset's
/// layout for `isa`) anywhere in memory: C[i][j] for j < width, C pointing at the panel's first
/// column.
void laq_panel_multiply(const float *a, long lda, const float *panel, long k, long width, float *c, long ldc, long row_begin,
                        long row_end, int accumulate, int isa);

/// A convolution's input and windows (NHWC): output position i = (image, oh, ow), row-major;
/// tap (th, tw) reads input row oh·stride_h + th·dilation_h − pad_top and column
/// ow·stride_w + tw·dilation_w − pad_left, zeros outside the input.
typedef struct {
    long height, width, channels;
    long out_height, out_width;
    long kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
} laq_conv_shape;

/// The floats laq_panels_convolve may copy a tile's rows of A into for a convolution (0: none).
long laq_panels_rows_copy_length(const laq_conv_shape *shape);

/// Tiles of a convolution's m output positions, a whole number of images (see panels.c): how
/// many, and where tile t starts (t = the count: m). A function of the shape and the instruction
/// set; ranges of whole tiles are what laq_panels_convolve runs fastest.
long laq_panels_tile_count(const laq_conv_shape *shape, long m, int isa);
long laq_panels_tile_start(const laq_conv_shape *shape, long m, long tile, int isa);

/// C[i][32p + j] = epilogue(Σ_t A[i][t]·W[t][32p + j]) for output positions row_begin ≤ i <
/// row_end and the columns of panels panel_begin ≤ p < panel_end (C with row stride n; `panels`
/// holds those panels, panel_begin's first, in the layout of laq_panels_pack), A the
/// im2col matrix of `x` (batch × height × width × channels) never built: each tap's channels are
/// read in place, `zeros` (at least `channels` zeros) standing for taps outside the input. The
/// chains are those of laq_panels_multiply over the im2col matrix, and the epilogue the passes it
/// replaces: the same bits on every instruction set and for any split of rows and panels. With
/// `skips` (W's values all finite), taps outside the input are skipped where panels.c says,
/// which changes no bits but a −0 sum's (see there). `sources` and `steps`: room for
/// kernel_h·kernel_w·12 pointers and 2·kernel_h·kernel_w values (a tile's table of tap
/// sources); `rows_copy`: NULL, or room for laq_panels_rows_copy_length floats, where a 1×1
/// kernel's tile may copy its rows of A (see panels.c).
void laq_panels_convolve(const float *x, const laq_conv_shape *shape, const float *zeros, const float *panels, long n,
                         const laq_epilogue *epilogue, float *c, long row_begin, long row_end, long panel_begin, long panel_end,
                         const float **sources, long *steps, float *rows_copy, int skips, int isa);

/// Winograd's F(2×2, 3×3) for 3×3 convolutions with unit strides and dilation (winograd.c): 1
/// when it applies to `shape` (any padding).
int laq_winograd_applies(const laq_conv_shape *shape);

/// The floats of a transformed kernel in panels: 16 × laq_panels_length(channels, filters).
long laq_winograd_length(long channels, long filters);

/// u[ξ][c][f] = (G·g·Gᵀ)[ξ] (ξ = 4·row + column of the 4×4 transform) for the 3×3 kernel g of
/// input channel c and filter f, `kernel` being Keras' (3, 3, channels, filters) array: computed
/// in double, rounded once. 16·channels·filters floats; each u[ξ] packed with laq_panels_pack
/// at ξ·laq_panels_length(channels, filters) is what laq_winograd_convolve reads.
void laq_winograd_transform_kernel(const float *kernel, long channels, long filters, float *u);

/// Tiles of 2×2 outputs of `images` images of `shape`: ⌈OH/2⌉·⌈OW/2⌉ each.
long laq_winograd_tile_count(const laq_conv_shape *shape, long images);

/// Tiles laq_winograd_convolve transforms at a time, and the floats of its workspace.
long laq_winograd_block_tiles(long channels);
long laq_winograd_workspace_length(long channels);

/// The outputs of tiles [tile_begin, tile_end) in the columns of panels [panel_begin,
/// panel_end) of the 3×3 convolution of `x` (NHWC, `shape`, where laq_winograd_applies) with the
/// transformed kernel `u` of n filters, through `epilogue` (as laq_panels_convolve), to C (row
/// stride n). Every output is the same function of the input for any split of tiles and panels
/// and on every `isa`. `workspace`: laq_winograd_workspace_length floats.
void laq_winograd_convolve(const float *x, const laq_conv_shape *shape, const float *u, long n, const laq_epilogue *epilogue, float *c,
                           long tile_begin, long tile_end, long panel_begin, long panel_end, float *workspace, int isa);

/// A loop body over [begin, end).
typedef void (*laq_range_fn)(void *context, long begin, long end);

/// Runs fn(context, begin, end) over `parts` contiguous parts of [0, count): part i is
/// [i·count/parts, (i+1)·count/parts). The calling thread and laq's workers (up to `parts` − 1 of
/// them, started at first use, never more than laq_pool_set_threads allows) claim parts until none
/// is left; returns 1 after every part has run. Returns 0 having run nothing when another caller
/// holds the pool (a nested or concurrent loop) or no worker can start: the caller then runs the
/// loop itself.
int laq_parallel_for(laq_range_fn fn, void *context, long count, long parts);

/// laq_parallel_for with parts that shrink: part i of P (P = parts) is [S(i)·count/S(P),
/// S(i+1)·count/S(P)), S(i) = i·P − i(i − 1)/2, so that part i weighs P − i.
int laq_parallel_for_tapered(laq_range_fn fn, void *context, long count, long parts);

/// Sets how many threads laq_parallel_for may use, the caller included (at least 1). Workers
/// already started beyond that number stay asleep.
void laq_pool_set_threads(int threads);

/// The number set by laq_pool_set_threads (0 until then: jobs then use one thread); 1 on a thread
/// running a part of a job, where a nested loop runs on that thread alone.
int laq_pool_threads(void);

/// CPUs this process may run on (its affinity mask); 0 where that cannot be read.
int laq_affinity_cpus(void);

#ifdef __cplusplus
}
#endif

#endif
