// Depthwise 2-D convolution, channels last (NHWC), inference. Each output row's positions sum
// their in-bounds taps in tap order (rows, then columns), per channel, then add the bias, exactly
// as the scalar definition does: the same IEEE operations in the same order (no contraction into
// fused multiply-adds), so the result equals it bit for bit on every instruction set. The channel
// loop is contiguous in the input, the kernel and the output, and the compiler vectorises it;
// with AVX-512 and one output channel per input channel, eight positions of a row sum a block of
// 16 channels in registers at once (independent chains) and store once. The bias is an
// epilogue's (laq_epilogue, without a residual), which may go on with an inference
// BatchNormalization and its ReLU before the store.
#include "laq_kernels.h"
#include "lanes.h"
#include "epilogue.h"

#pragma clang fp contract(off)

__attribute__((always_inline)) static inline void depthwise_rows(const float *input, long height, long width, long channels, const float *kernel, long kernel_h,
                           long kernel_w, long multiplier, long stride_h, long stride_w, long dilation_h, long dilation_w,
                           long pad_top, long pad_left, long out_w, float *output, long row_begin, long row_end, long out_h,
                           const laq_epilogue *epilogue) {
    const long out_channels = channels * multiplier;
    for (long row = row_begin; row < row_end; row++) {
        const long n = row / out_h, oh = row % out_h;
        float *out_row = output + row * out_w * out_channels;
        for (long i = 0; i < out_w * out_channels; i++) out_row[i] = 0;
        for (long ow = 0; ow < out_w; ow++) {
            float *out = out_row + ow * out_channels;
            for (long th = 0; th < kernel_h; th++) {
                const long ih = oh * stride_h + th * dilation_h - pad_top;
                if (ih < 0 || ih >= height) continue;
                for (long tw = 0; tw < kernel_w; tw++) {
                    const long iw = ow * stride_w + tw * dilation_w - pad_left;
                    if (iw < 0 || iw >= width) continue;
                    const float *in = input + ((n * height + ih) * width + iw) * channels;
                    const float *k = kernel + (th * kernel_w + tw) * out_channels;
                    if (multiplier == 1) {
                        for (long c = 0; c < channels; c++) out[c] += in[c] * k[c];
                    } else {
                        for (long c = 0; c < channels; c++)
                            for (long j = 0; j < multiplier; j++) out[c * multiplier + j] += in[c] * k[c * multiplier + j];
                    }
                }
            }
            for (long c = 0; c < out_channels; c++) out[c] = epilogue_scalar(out[c], epilogue, c);
        }
    }
}

#if defined(__x86_64__)
// AVX2: the same kernels as AVX-512's below, over blocks of 8 channels (16 vector registers:
// eight positions' sums, the tap's weights and a product). A block inside the channels loads
// whole vectors; the last, partial one masked loads and stores (LAQ_LOAD8, LAQ_STORE8).

// One output position's 8-channel blocks from c0 (up to four), its in-bounds taps' bounds
// checked one by one: the positions near the left and right edges.
__attribute__((target("avx2,fma"), always_inline)) static inline void
depthwise_edge_avx2(const float *image, long height, long width, long channels, const float *kernel, long kernel_h, long kernel_w,
                    long oh, long ow, long stride_h, long stride_w, long dilation_h, long dilation_w, long pad_top, long pad_left,
                    float *out, const laq_epilogue *epilogue) {
    for (long c0 = 0; c0 < channels; c0 += 32) {
        const long blocks = (channels - c0 + 7) / 8 < 4 ? (channels - c0 + 7) / 8 : 4;
        __m256i masks[4];
        __m256 acc[4];
#pragma clang loop unroll(full)
        for (long b = 0; b < 4; b++) {
            masks[b] = laq_lanes8(channels - c0 - 8 * b);
            acc[b] = _mm256_setzero_ps();
        }
        for (long th = 0; th < kernel_h; th++) {
            const long ih = oh * stride_h + th * dilation_h - pad_top;
            if (ih < 0 || ih >= height) continue;
            const float *in_row = image + ih * width * channels + c0;
            const float *k_row = kernel + th * kernel_w * channels + c0;
            for (long tw = 0; tw < kernel_w; tw++) {
                const long iw = ow * stride_w + tw * dilation_w - pad_left;
                if (iw < 0 || iw >= width) continue;
                const float *in = in_row + iw * channels, *k = k_row + tw * channels;
#pragma clang loop unroll(full)
                for (long b = 0; b < 4; b++) {
                    if (b >= blocks) break;
                    const int full = channels - c0 - 8 * b >= 8;
                    const __m256 x = LAQ_LOAD8(in + 8 * b, masks[b], full);
                    acc[b] = _mm256_add_ps(acc[b], _mm256_mul_ps(x, LAQ_LOAD8(k + 8 * b, masks[b], full)));
                }
            }
        }
#pragma clang loop unroll(full)
        for (long b = 0; b < 4; b++) {
            if (b >= blocks) break;
            const int full = channels - c0 - 8 * b >= 8;
            const epilogue_columns8 columns = epilogue_columns_avx2(epilogue, c0 + 8 * b, masks[b], full);
            LAQ_STORE8(out + c0 + 8 * b, masks[b], epilogue_apply_avx2(acc[b], &columns), full);
        }
    }
}

// The 8-channel block from c0 of `count` (≤ 8) neighbouring output positions of one row, as
// depthwise_interior (below) does with 16 channels; `full`: the block lies inside the channels.
__attribute__((target("avx2,fma"), always_inline)) static inline void
depthwise_interior_avx2(const float *first, long row_step, long position_step, long column_step, long channels, long c0,
                        const float *kernel, long th_begin, long th_end, long kernel_w, float *out, const laq_epilogue *epilogue,
                        const long count, const int full) {
    const __m256i mask = laq_lanes8(channels - c0);
    __m256 acc[8];
#pragma clang loop unroll(full)
    for (long p = 0; p < 8; p++) acc[p] = _mm256_setzero_ps();
    for (long th = th_begin; th < th_end; th++) {
        const float *row = first + (th - th_begin) * row_step + c0;
        for (long tw = 0; tw < kernel_w; tw++) {
            const float *in = row + tw * column_step;
            const __m256 weights = LAQ_LOAD8(kernel + (th * kernel_w + tw) * channels + c0, mask, full);
#pragma clang loop unroll(full)
            for (long p = 0; p < 8; p++) {
                if (p >= count) break;
                acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(LAQ_LOAD8(in + p * position_step, mask, full), weights));
            }
        }
    }
    const epilogue_columns8 columns = epilogue_columns_avx2(epilogue, c0, mask, full);
#pragma clang loop unroll(full)
    for (long p = 0; p < 8; p++) {
        if (p >= count) break;
        LAQ_STORE8(out + p * channels + c0, mask, epilogue_apply_avx2(acc[p], &columns), full);
    }
}

__attribute__((target("avx2,fma"))) static void depthwise_rows_avx2(const float *input, long height, long width, long channels,
                                                                const float *kernel, long kernel_h, long kernel_w, long multiplier,
                                                                long stride_h, long stride_w, long dilation_h, long dilation_w,
                                                                long pad_top, long pad_left, long out_w, float *output, long row_begin,
                                                                long row_end, long out_h, const laq_epilogue *epilogue) {
    if (multiplier != 1) {
        depthwise_rows(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h,
                       dilation_w, pad_top, pad_left, out_w, output, row_begin, row_end, out_h, epilogue);
        return;
    }
    // As depthwise_rows_avx512: the edge positions one by one, the others eight at a time,
    // block by block, the next output row's new input rows fetched into L2 as the groups go.
    long inner_begin = pad_left <= 0 ? 0 : (pad_left + stride_w - 1) / stride_w;
    const long reach = width - 1 + pad_left - (kernel_w - 1) * dilation_w;
    long inner_end = reach < 0 ? 0 : reach / stride_w + 1;
    if (inner_end > out_w) inner_end = out_w;
    if (inner_begin > inner_end) inner_begin = inner_end;
    for (long row = row_begin; row < row_end; row++) {
        const long n = row / out_h, oh = row % out_h;
        const float *image = input + n * height * width * channels;
        float *out_row = output + row * out_w * channels;
        long th_begin = 0, th_end = kernel_h;
        while (th_begin < kernel_h && oh * stride_h + th_begin * dilation_h - pad_top < 0) th_begin++;
        while (th_end > th_begin && oh * stride_h + (th_end - 1) * dilation_h - pad_top >= height) th_end--;
        for (long ow = 0; ow < inner_begin; ow++)
            depthwise_edge_avx2(image, height, width, channels, kernel, kernel_h, kernel_w, oh, ow, stride_h, stride_w, dilation_h,
                                dilation_w, pad_top, pad_left, out_row + ow * channels, epilogue);
        const long row_step = dilation_h * width * channels, position_step = stride_w * channels, column_step = dilation_w * channels;
        const float *first_row = th_begin < th_end ? image + (oh * stride_h + th_begin * dilation_h - pad_top) * width * channels : 0;
        long fetch_begin = oh * stride_h + (kernel_h - 1) * dilation_h - pad_top + 1, fetch_end = fetch_begin + stride_h;
        if (fetch_begin < 0) fetch_begin = 0;
        if (fetch_end > height) fetch_end = height;
        if (oh + 1 >= out_h) fetch_end = fetch_begin;
        for (long c0 = 0; c0 < channels; c0 += 8) {
            const int full = channels - c0 >= 8;
            for (long ow = inner_begin; ow < inner_end; ow += 8) {
                const long count = inner_end - ow < 8 ? inner_end - ow : 8;
                // A line holds 16 channels: the even blocks fetch.
                if ((c0 & 15) == 0) {
                    const long fetch_left = ow == inner_begin ? 0 : ow * stride_w - pad_left;
                    const long fetch_right = ow + count == inner_end ? width : (ow + count) * stride_w - pad_left;
                    for (long ih = fetch_begin; ih < fetch_end; ih++) {
                        const char *line = (const char *)(image + ih * width * channels + c0);
                        for (long iw = fetch_left; iw < fetch_right; iw++) _mm_prefetch(line + iw * channels * 4, _MM_HINT_T1);
                    }
                }
                const float *first = first_row ? first_row + (ow * stride_w - pad_left) * channels : image;
                float *out = out_row + ow * channels;
                switch (count + 8 * full) {
#define LAQ_POSITIONS(P)                                                                                                             \
    case P:                                                                                                                          \
        depthwise_interior_avx2(first, row_step, position_step, column_step, channels, c0, kernel, th_begin, th_end, kernel_w, out, \
                                epilogue, P, 0);                                                                                     \
        break;                                                                                                                       \
    case P + 8:                                                                                                                      \
        depthwise_interior_avx2(first, row_step, position_step, column_step, channels, c0, kernel, th_begin, th_end, kernel_w, out, \
                                epilogue, P, 1);                                                                                     \
        break;
                    LAQ_POSITIONS(1) LAQ_POSITIONS(2) LAQ_POSITIONS(3) LAQ_POSITIONS(4)
                    LAQ_POSITIONS(5) LAQ_POSITIONS(6) LAQ_POSITIONS(7) LAQ_POSITIONS(8)
#undef LAQ_POSITIONS
                default: break;
                }
            }
        }
        for (long ow = inner_end; ow < out_w; ow++)
            depthwise_edge_avx2(image, height, width, channels, kernel, kernel_h, kernel_w, oh, ow, stride_h, stride_w, dilation_h,
                                dilation_w, pad_top, pad_left, out_row + ow * channels, epilogue);
    }
}

// One output position's 16-channel blocks from c0 (up to four, `blocks`), summing the in-bounds
// taps with their bounds checked: the positions near the left and right edges.
__attribute__((target("avx512f"), always_inline)) static inline void
depthwise_edge(const float *image, long height, long width, long channels, const float *kernel, long kernel_h, long kernel_w,
               long oh, long ow, long stride_h, long stride_w, long dilation_h, long dilation_w, long pad_top, long pad_left,
               float *out, const laq_epilogue *epilogue) {
    for (long c0 = 0; c0 < channels; c0 += 64) {
        const long blocks = (channels - c0 + 15) / 16 < 4 ? (channels - c0 + 15) / 16 : 4;
        __mmask16 masks[4];
        __m512 acc[4];
#pragma clang loop unroll(full)
        for (long b = 0; b < 4; b++) {
            masks[b] = laq_lanes(channels - c0 - 16 * b);
            acc[b] = _mm512_setzero_ps();
        }
        for (long th = 0; th < kernel_h; th++) {
            const long ih = oh * stride_h + th * dilation_h - pad_top;
            if (ih < 0 || ih >= height) continue;
            const float *in_row = image + ih * width * channels + c0;
            const float *k_row = kernel + th * kernel_w * channels + c0;
            for (long tw = 0; tw < kernel_w; tw++) {
                const long iw = ow * stride_w + tw * dilation_w - pad_left;
                if (iw < 0 || iw >= width) continue;
                const float *in = in_row + iw * channels, *k = k_row + tw * channels;
#pragma clang loop unroll(full)
                for (long b = 0; b < 4; b++) {
                    if (b >= blocks) break;
                    const __m512 x = _mm512_maskz_loadu_ps(masks[b], in + 16 * b);
                    acc[b] = _mm512_add_ps(acc[b], _mm512_mul_ps(x, _mm512_maskz_loadu_ps(masks[b], k + 16 * b)));
                }
            }
        }
#pragma clang loop unroll(full)
        for (long b = 0; b < 4; b++) {
            if (b >= blocks) break;
            _mm512_mask_storeu_ps(out + c0 + 16 * b, masks[b], epilogue_avx512(acc[b], epilogue, c0 + 16 * b, masks[b]));
        }
    }
}

enum { POSITIONS = 8 };

// The 16-channel block from c0 of `count` (≤ 8) neighbouring output positions of one row, every
// column tap inside the input, kernel rows [th_begin, th_end) inside it: the block sums the taps
// of all the positions at once, one chain per position (independent chains overlap; one
// position's chain alone waits on each addition). `first` points at the first position's tap
// (th_begin, 0).
__attribute__((target("avx512f"), always_inline)) static inline void
depthwise_interior(const float *first, long row_step, long position_step, long column_step, long channels, long c0, const float *kernel,
                   long th_begin, long th_end, long kernel_w, float *out, const laq_epilogue *epilogue, const long count) {
    const __mmask16 mask = laq_lanes(channels - c0);
    __m512 acc[POSITIONS];
#pragma clang loop unroll(full)
    for (long p = 0; p < POSITIONS; p++) acc[p] = _mm512_setzero_ps();
    for (long th = th_begin; th < th_end; th++) {
        const float *row = first + (th - th_begin) * row_step + c0;
        for (long tw = 0; tw < kernel_w; tw++) {
            const float *in = row + tw * column_step;
            const __m512 weights = _mm512_maskz_loadu_ps(mask, kernel + (th * kernel_w + tw) * channels + c0);
#pragma clang loop unroll(full)
            for (long p = 0; p < POSITIONS; p++) {
                if (p >= count) break;
                const __m512 x = _mm512_maskz_loadu_ps(mask, in + p * position_step);
                acc[p] = _mm512_add_ps(acc[p], _mm512_mul_ps(x, weights));
            }
        }
    }
    const epilogue_columns columns = epilogue_columns_avx512(epilogue, c0, mask);
#pragma clang loop unroll(full)
    for (long p = 0; p < POSITIONS; p++) {
        if (p >= count) break;
        _mm512_mask_storeu_ps(out + p * channels + c0, mask, epilogue_apply_avx512(acc[p], &columns));
    }
}

// Eight positions as depthwise_interior, for a kernel `kernel_w` columns wide with unit
// dilation and column stride `stride` (constants): position p's tap tw reads input column
// p·stride + tw of the eight's span, so each kernel row loads the span's 7·stride + kernel_w
// vectors once (instead of 8·kernel_w) and every tap multiplies them from registers.
__attribute__((target("avx512f"), always_inline)) static inline void
depthwise_interior_span(const float *first, long row_step, long channels, long c0, const float *kernel, long th_begin, long th_end,
                        float *out, const laq_epilogue *epilogue, const long kernel_w, const long stride) {
    enum { SPAN_MAX = (POSITIONS - 1) * 2 + 5 };
    const long span = (POSITIONS - 1) * stride + kernel_w;
    const __mmask16 mask = laq_lanes(channels - c0);
    __m512 acc[POSITIONS];
#pragma clang loop unroll(full)
    for (long p = 0; p < POSITIONS; p++) acc[p] = _mm512_setzero_ps();
    for (long th = th_begin; th < th_end; th++) {
        const float *row = first + (th - th_begin) * row_step + c0, *k = kernel + th * kernel_w * channels + c0;
        __m512 x[SPAN_MAX];
#pragma clang loop unroll(full)
        for (long j = 0; j < SPAN_MAX; j++) {
            if (j >= span) break;
            x[j] = _mm512_maskz_loadu_ps(mask, row + j * channels);
        }
#pragma clang loop unroll(full)
        for (long tw = 0; tw < 5; tw++) {
            if (tw >= kernel_w) break;
            const __m512 weights = _mm512_maskz_loadu_ps(mask, k + tw * channels);
#pragma clang loop unroll(full)
            for (long p = 0; p < POSITIONS; p++) acc[p] = _mm512_add_ps(acc[p], _mm512_mul_ps(x[p * stride + tw], weights));
        }
    }
    const epilogue_columns columns = epilogue_columns_avx512(epilogue, c0, mask);
#pragma clang loop unroll(full)
    for (long p = 0; p < POSITIONS; p++) _mm512_mask_storeu_ps(out + p * channels + c0, mask, epilogue_apply_avx512(acc[p], &columns));
}

__attribute__((target("avx512f"))) static void depthwise_rows_avx512(const float *input, long height, long width, long channels,
                                                                    const float *kernel, long kernel_h, long kernel_w, long multiplier,
                                                                    long stride_h, long stride_w, long dilation_h, long dilation_w,
                                                                    long pad_top, long pad_left, long out_w, float *output,
                                                                    long row_begin, long row_end, long out_h, const laq_epilogue *epilogue) {
    if (multiplier != 1) {
        depthwise_rows(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h,
                       dilation_w, pad_top, pad_left, out_w, output, row_begin, row_end, out_h, epilogue);
        return;
    }
    // acc = 0, then acc += x·k per in-bounds tap in order (a product, then a sum: no fused
    // multiply-add), then the epilogue: the scalar definition's operations, held in a register.
    // Columns [inner_begin, inner_end) have every column tap inside the input; the others check
    // theirs one by one.
    long inner_begin = pad_left <= 0 ? 0 : (pad_left + stride_w - 1) / stride_w;
    const long reach = width - 1 + pad_left - (kernel_w - 1) * dilation_w;
    long inner_end = reach < 0 ? 0 : reach / stride_w + 1;
    if (inner_end > out_w) inner_end = out_w;
    if (inner_begin > inner_end) inner_begin = inner_end;
    for (long row = row_begin; row < row_end; row++) {
        const long n = row / out_h, oh = row % out_h;
        const float *image = input + n * height * width * channels;
        float *out_row = output + row * out_w * channels;
        // The kernel rows inside the input: ih = oh·stride_h + th·dilation_h − pad_top ∈ [0, height).
        long th_begin = 0, th_end = kernel_h;
        while (th_begin < kernel_h && oh * stride_h + th_begin * dilation_h - pad_top < 0) th_begin++;
        while (th_end > th_begin && oh * stride_h + (th_end - 1) * dilation_h - pad_top >= height) th_end--;
        for (long ow = 0; ow < inner_begin; ow++)
            depthwise_edge(image, height, width, channels, kernel, kernel_h, kernel_w, oh, ow, stride_h, stride_w, dilation_h,
                           dilation_w, pad_top, pad_left, out_row + ow * channels, epilogue);
        // Block by block, each through the row's positions: every load then steps through memory
        // by a constant stride, which the hardware prefetcher follows (batches larger than the
        // caches stream from memory).
        const long row_step = dilation_h * width * channels, position_step = stride_w * channels, column_step = dilation_w * channels;
        // (No kernel row inside the input: nothing is read.)
        const float *first_row = th_begin < th_end ? image + (oh * stride_h + th_begin * dilation_h - pad_top) * width * channels : 0;
        const int span = dilation_w == 1 && (kernel_w == 3 || kernel_w == 5) && (stride_w == 1 || stride_w == 2);
        // The input rows the next output row of this image reads and this one does not: each
        // group of positions fetches its block's part of them into L2, one output row ahead of
        // their first use (the first and last groups the margins' columns too).
        long fetch_begin = oh * stride_h + (kernel_h - 1) * dilation_h - pad_top + 1, fetch_end = fetch_begin + stride_h;
        if (fetch_begin < 0) fetch_begin = 0;
        if (fetch_end > height) fetch_end = height;
        if (oh + 1 >= out_h) fetch_end = fetch_begin;
        for (long c0 = 0; c0 < channels; c0 += 16) {
            for (long ow = inner_begin; ow < inner_end; ow += POSITIONS) {
                const long count = inner_end - ow < POSITIONS ? inner_end - ow : POSITIONS;
                const long fetch_left = ow == inner_begin ? 0 : ow * stride_w - pad_left;
                const long fetch_right = ow + count == inner_end ? width : (ow + count) * stride_w - pad_left;
                for (long ih = fetch_begin; ih < fetch_end; ih++) {
                    const char *line = (const char *)(image + ih * width * channels + c0);
                    for (long iw = fetch_left; iw < fetch_right; iw++) _mm_prefetch(line + iw * channels * 4, _MM_HINT_T1);
                }
                const float *first = first_row ? first_row + (ow * stride_w - pad_left) * channels : image;
                float *out = out_row + ow * channels;
                if (count == POSITIONS && span) {
                    if (kernel_w == 3 && stride_w == 1)
                        depthwise_interior_span(first, row_step, channels, c0, kernel, th_begin, th_end, out, epilogue, 3, 1);
                    else if (kernel_w == 3)
                        depthwise_interior_span(first, row_step, channels, c0, kernel, th_begin, th_end, out, epilogue, 3, 2);
                    else if (stride_w == 1)
                        depthwise_interior_span(first, row_step, channels, c0, kernel, th_begin, th_end, out, epilogue, 5, 1);
                    else
                        depthwise_interior_span(first, row_step, channels, c0, kernel, th_begin, th_end, out, epilogue, 5, 2);
                    continue;
                }
                switch (count) {
#define LAQ_POSITIONS(P)                                                                                                        \
    case P:                                                                                                                     \
        depthwise_interior(first, row_step, position_step, column_step, channels, c0, kernel, th_begin, th_end, kernel_w, out, \
                           epilogue, P);                                                                                        \
        break;
                    LAQ_POSITIONS(1) LAQ_POSITIONS(2) LAQ_POSITIONS(3) LAQ_POSITIONS(4)
                    LAQ_POSITIONS(5) LAQ_POSITIONS(6) LAQ_POSITIONS(7) LAQ_POSITIONS(8)
#undef LAQ_POSITIONS
                default: break;
                }
            }
        }
        for (long ow = inner_end; ow < out_w; ow++)
            depthwise_edge(image, height, width, channels, kernel, kernel_h, kernel_w, oh, ow, stride_h, stride_w, dilation_h,
                           dilation_w, pad_top, pad_left, out_row + ow * channels, epilogue);
    }
}
#endif

void laq_depthwise_conv2d(const float *input, long height, long width, long channels, const float *kernel, long kernel_h,
                          long kernel_w, long multiplier, long stride_h, long stride_w, long dilation_h, long dilation_w,
                          long pad_top, long pad_left, long out_h, long out_w, float *output, long row_begin, long row_end,
                          const laq_epilogue *epilogue, int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        depthwise_rows_avx512(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h,
                              dilation_w, pad_top, pad_left, out_w, output, row_begin, row_end, out_h, epilogue);
        return;
    }
    if (isa >= LAQ_ISA_AVX2) {
        depthwise_rows_avx2(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h,
                            dilation_w, pad_top, pad_left, out_w, output, row_begin, row_end, out_h, epilogue);
        return;
    }
#endif
    (void)isa;
    depthwise_rows(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h, dilation_w,
                   pad_top, pad_left, out_w, output, row_begin, row_end, out_h, epilogue);
}
