// Depthwise 2-D convolution, channels last (NHWC), inference. Each output row's positions sum
// their in-bounds taps in tap order (rows, then columns), per channel, exactly as the scalar
// definition does: the same IEEE operations in the same order (no contraction into fused
// multiply-adds), so the result equals it bit for bit on every instruction set. The channel
// loop is contiguous in the input, the kernel and the output, and the compiler vectorises it.
#include "laq_kernels.h"

#pragma clang fp contract(off)

__attribute__((always_inline)) static inline void depthwise_rows(const float *input, long height, long width, long channels, const float *kernel, long kernel_h,
                           long kernel_w, long multiplier, long stride_h, long stride_w, long dilation_h, long dilation_w,
                           long pad_top, long pad_left, long out_w, float *output, long row_begin, long row_end, long out_h) {
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
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void depthwise_rows_avx2(const float *input, long height, long width, long channels,
                                                                const float *kernel, long kernel_h, long kernel_w, long multiplier,
                                                                long stride_h, long stride_w, long dilation_h, long dilation_w,
                                                                long pad_top, long pad_left, long out_w, float *output, long row_begin,
                                                                long row_end, long out_h) {
    depthwise_rows(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h, dilation_w,
                   pad_top, pad_left, out_w, output, row_begin, row_end, out_h);
}

__attribute__((target("avx512f"))) static void depthwise_rows_avx512(const float *input, long height, long width, long channels,
                                                                    const float *kernel, long kernel_h, long kernel_w, long multiplier,
                                                                    long stride_h, long stride_w, long dilation_h, long dilation_w,
                                                                    long pad_top, long pad_left, long out_w, float *output,
                                                                    long row_begin, long row_end, long out_h) {
    depthwise_rows(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h, dilation_w,
                   pad_top, pad_left, out_w, output, row_begin, row_end, out_h);
}
#endif

void laq_depthwise_conv2d(const float *input, long height, long width, long channels, const float *kernel, long kernel_h,
                          long kernel_w, long multiplier, long stride_h, long stride_w, long dilation_h, long dilation_w,
                          long pad_top, long pad_left, long out_h, long out_w, float *output, long row_begin, long row_end,
                          int isa) {
#if defined(__x86_64__)
    if (isa >= LAQ_ISA_AVX512) {
        depthwise_rows_avx512(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h,
                              dilation_w, pad_top, pad_left, out_w, output, row_begin, row_end, out_h);
        return;
    }
    if (isa >= LAQ_ISA_AVX2) {
        depthwise_rows_avx2(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h,
                            dilation_w, pad_top, pad_left, out_w, output, row_begin, row_end, out_h);
        return;
    }
#endif
    (void)isa;
    depthwise_rows(input, height, width, channels, kernel, kernel_h, kernel_w, multiplier, stride_h, stride_w, dilation_h, dilation_w,
                   pad_top, pad_left, out_w, output, row_begin, row_end, out_h);
}
