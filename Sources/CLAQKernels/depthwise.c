// Depthwise 2-D convolution, channels last (NHWC), inference. Each output row's positions sum
// their in-bounds taps in tap order (rows, then columns), per channel, then add the bias, exactly
// as the scalar definition does: the same IEEE operations in the same order (no contraction into
// fused multiply-adds), so the result equals it bit for bit on every instruction set. The channel
// loop is contiguous in the input, the kernel and the output, and the compiler vectorises it;
// with AVX-512 and one output channel per input channel, each block of 16 channels sums its taps
// in a register and stores once. The bias is an epilogue's (laq_epilogue), which may go on with
// an inference BatchNormalization and its ReLU before the store.
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
__attribute__((target("avx2"))) static void depthwise_rows_avx2(const float *input, long height, long width, long channels,
                                                                const float *kernel, long kernel_h, long kernel_w, long multiplier,
                                                                long stride_h, long stride_w, long dilation_h, long dilation_w,
                                                                long pad_top, long pad_left, long out_w, float *output, long row_begin,
                                                                long row_end, long out_h, const laq_epilogue *epilogue) {
    depthwise_rows(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h, dilation_w,
                   pad_top, pad_left, out_w, output, row_begin, row_end, out_h, epilogue);
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
    // multiply-add), then + bias: the scalar definition's operations, held in a register. Up to
    // four blocks of 16 channels go through each tap together: one block's sum is a chain of
    // dependent additions, four are independent chains that overlap.
    for (long row = row_begin; row < row_end; row++) {
        const long n = row / out_h, oh = row % out_h;
        float *out_row = output + row * out_w * channels;
        for (long ow = 0; ow < out_w; ow++) {
            float *out = out_row + ow * channels;
            for (long c0 = 0; c0 < channels; c0 += 64) {
                const long blocks = (channels - c0 + 15) / 16 < 4 ? (channels - c0 + 15) / 16 : 4;
                __mmask16 masks[4];
                __m512 acc[4];
#pragma clang loop unroll(full)
                for (long b = 0; b < 4; b++) {
                    const long left = channels - c0 - 16 * b;
                    masks[b] = laq_lanes(left);
                    acc[b] = _mm512_setzero_ps();
                }
                for (long th = 0; th < kernel_h; th++) {
                    const long ih = oh * stride_h + th * dilation_h - pad_top;
                    if (ih < 0 || ih >= height) continue;
                    const float *in_row = input + (n * height + ih) * width * channels + c0;
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
