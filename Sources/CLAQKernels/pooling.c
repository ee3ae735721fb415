// Max pooling over channels-last images (layout and contract in include/laq_kernels.h). The
// channel loop is branch-free (compare and select), so it vectorises at any channel count.
#include "laq_kernels.h"
#include "lanes.h"

#if defined(__x86_64__)
#include <immintrin.h>

/// One later tap: o = s where s > o (strictly), and best = the input index there.
__attribute__((target("avx512f"))) static void later_tap_avx512(const float *s, float *o, long *best, long source,
                                                                  long channels) {
    const __m512i low = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), high = _mm512_set_epi64(15, 14, 13, 12, 11, 10, 9, 8);
    for (long c = 0; c < channels; c += 16) {
        const __mmask16 inside = laq_lanes(channels - c);
        const __m512 sv = _mm512_maskz_loadu_ps(inside, s + c), ov = _mm512_maskz_loadu_ps(inside, o + c);
        const __mmask16 greater = _mm512_mask_cmp_ps_mask(inside, sv, ov, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(o + c, greater, sv);
        const __m512i base = _mm512_set1_epi64(source + c);
        _mm512_mask_storeu_epi64(best + c, (__mmask8)greater, _mm512_add_epi64(base, low));
        _mm512_mask_storeu_epi64(best + c + 8, (__mmask8)(greater >> 8), _mm512_add_epi64(base, high));
    }
}

/// One later tap without indices: o = s where s > o (strictly). VMAXPS(s, o) returns its first
/// operand where it is greater and its second otherwise (NaNs and equal zeros included): exactly
/// the comparison and select of the scalar loop.
__attribute__((target("avx512f"))) static void later_tap_max_avx512(const float *s, float *o, long channels) {
    for (long c = 0; c < channels; c += 16) {
        const __mmask16 inside = laq_lanes(channels - c);
        _mm512_mask_storeu_ps(o + c, inside, _mm512_max_ps(_mm512_maskz_loadu_ps(inside, s + c), _mm512_maskz_loadu_ps(inside, o + c)));
    }
}
#endif

/// The same in plain C (the scalar and AVX2 paths).
static void later_tap_scalar(const float *restrict s, float *restrict o, long *restrict best, long source, long channels) {
    for (long c = 0; c < channels; c++) {
        const int greater = s[c] > o[c];
        o[c] = greater ? s[c] : o[c];
        best[c] = greater ? source + c : best[c];
    }
}

void laq_max_pool(const float *x, long row_begin, long row_end, long height, long width, long channels,
                  long rows_out, long rows_kernel, long rows_stride, long rows_pad,
                  long cols_out, long cols_kernel, long cols_stride, long cols_pad,
                  const float *zeros, float *out, long *argmax, int isa) {
#if defined(__x86_64__)
    const int avx512 = isa >= LAQ_ISA_AVX512;
#else
    const int avx512 = 0;
    (void)isa;
#endif
    for (long row = row_begin; row < row_end; row++) {
        const long n = row / rows_out, oh = row % rows_out;
        for (long ow = 0; ow < cols_out; ow++) {
            const long position = (n * rows_out + oh) * cols_out + ow;
            float *restrict o = out + position * channels;
            long *restrict best = argmax ? argmax + position * channels : 0;
            int first = 1;
            for (long th = 0; th < rows_kernel; th++) {
                const long ih = oh * rows_stride + th - rows_pad;
                if ((ih < 0 || ih >= height) && !zeros) continue;
                for (long tw = 0; tw < cols_kernel; tw++) {
                    const long iw = ow * cols_stride + tw - cols_pad;
                    // A tap outside the image: skipped, or the zeros of a folded padding.
                    const int outside = ih < 0 || ih >= height || iw < 0 || iw >= width;
                    if (outside && !zeros) continue;
                    const long source = outside ? -1 : ((n * height + ih) * width + iw) * channels;
                    const float *restrict s = outside ? zeros : x + source;
                    if (first) {
                        // The first tap is taken whatever its value (NaN, −∞).
                        for (long c = 0; c < channels; c++) o[c] = s[c];
                        if (best)
                            for (long c = 0; c < channels; c++) best[c] = source + c;
                        first = 0;
                    } else if (best) {
                        // Strictly greater: the first maximum in tap order is kept.
#if defined(__x86_64__)
                        if (avx512) later_tap_avx512(s, o, best, source, channels);
                        else
#endif
                            later_tap_scalar(s, o, best, source, channels);
                    } else {
#if defined(__x86_64__)
                        if (avx512) later_tap_max_avx512(s, o, channels);
                        else
#endif
                            for (long c = 0; c < channels; c++) o[c] = s[c] > o[c] ? s[c] : o[c];
                    }
                }
            }
            if (first) {  // no tap inside the image
                for (long c = 0; c < channels; c++) o[c] = -__builtin_inff();
                if (best)
                    for (long c = 0; c < channels; c++) best[c] = -1;
            }
        }
    }
}
