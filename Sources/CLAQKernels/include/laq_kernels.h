// laq's SIMD kernels: the one place LAQEngine runs hand-vectorised C.
//
// Plane matrices. A K×N matrix (row-major, the last axis the output) whose codes take at most
// three values c ∈ {0, 1, 2} is held as P = L − 1 one-hot bit planes: plane p has bit (k, n)
// set when code(k, n) = p + 1 (code 0 sets no bit). Planes are blocked by 64 output columns so
// that a kernel streams them: the 64-bit word for block b, row k, plane p is at
//     planes[(b·K + k)·P + p],   bit j ↔ column n = 64·b + j.
// Columns past N (in the last block) have no bits set.
//
// Levels are given per column, level-major and padded to whole blocks:
//     levels[c·Npad + n] = level of code c in column n,  Npad = 64·⌈N/64⌉,
// so per-tensor tables are repeated across columns.
#ifndef LAQ_KERNELS_H
#define LAQ_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction sets a kernel can use.
enum {
    LAQ_ISA_SCALAR = 0,
    LAQ_ISA_AVX2 = 1,    // AVX2 + FMA
    LAQ_ISA_AVX512 = 2,  // AVX-512 F
    LAQ_ISA_AVX512_VNNI = 3,  // AVX-512 F, BW and VNNI
};

/// The best instruction set this CPU and its operating system support (CPUID and XGETBV).
int laq_kernels_best_isa(void);

/// C[r][n] = Σ_k A[r][k] · levels[code(k, n)][n] (+ C[r][n] when `accumulate`), for rows
/// r < m and the columns of blocks [block_begin, block_end). The sum runs over k in order, one
/// multiply-add per term (fused with AVX2 and AVX-512); zeros of A are skipped (their terms
/// are ±0, the levels being finite).
/// `isa` must be at most `laq_kernels_best_isa()`.
void laq_planes_multiply(const float *a, long lda, long m, long k, long n,
                         const uint64_t *planes, int plane_count, const float *levels,
                         float *c, long ldc, int accumulate,
                         long block_begin, long block_end, int isa);

/// Rows [row_begin, row_end) of the matrix as floats, row-major: out[(r − row_begin)·N + n].
void laq_planes_decode_rows(const uint64_t *planes, int plane_count, long k, long n, const float *levels,
                            long row_begin, long row_end, float *out, int isa);

/// out[i − start] = levels[code(i)][column(i)] for row-major elements i ∈ [start, start + count).
void laq_planes_decode(const uint64_t *planes, int plane_count, long k, long n, const float *levels,
                       long start, long count, float *out);

// Dot planes: the same one-hot planes for products with int8 activations, laid out for 4-way
// byte dot products. A word covers 64 bits = 16 output columns × 4 consecutive rows:
//     planes[((b·K4 + g)·P + p)·4 + s],  K4 = ⌈K/4⌉, block b of 64 columns, sub-block s,
//     bit 4·j + i ↔ row k = 4·g + i, column n = 64·b + 16·s + j.
// Rows past K and columns past N have no bits set.

/// q[i] = round(x[i] / scale) for i < k, zero up to k4·4, with scale = max|x| / 127 (0 when x
/// is all zero); total = Σ q. Returns 0, with q untouched, when x holds a NaN or infinity.
int laq_int8_quantize(const float *x, long k, long k4, int8_t *q, float *scale, int32_t *total);

/// c[n] (+)= scale · (l₀[n]·(total − Σ_p S_p[n]) + Σ_p l_{p+1}[n]·S_p[n]), S_p[n] = Σ_{k: plane p}
/// q[k], for the columns of blocks [block_begin, block_end). The sums are exact int32, so every
/// instruction set gives the same bits.
void laq_dot_planes_multiply(const int8_t *q, long k4, float scale, int32_t total, long n,
                             const uint64_t *planes, int plane_count, const float *levels,
                             float *c, int accumulate, long block_begin, long block_end, int isa);

/// out[i − start] = levels[code(i)][column(i)] for row-major elements i ∈ [start, start + count).
void laq_dot_planes_decode(const uint64_t *planes, int plane_count, long k, long n, const float *levels,
                           long start, long count, float *out);

#ifdef __cplusplus
}
#endif

#endif
