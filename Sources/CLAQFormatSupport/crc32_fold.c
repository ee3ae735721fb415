// CRC-32 by folding with carry-less multiplication; see laq_format_support.h for the contract.
//
// Constants, for P(x) = 0x104C11DB7 in the bit-reflected domain (each is x^k mod P(x), reflected
// and shifted left by one, as the reflected multiplication needs):
//   fold by 4 blocks (512 bits):  k1 = x^(4·128+32) mod P, k2 = x^(4·128−32) mod P
//   fold by 1 block (128 bits):   k3 = x^(128+32) mod P,   k4 = x^(128−32) mod P
//   128 → 64 bits uses k4; 64 → 32 bits uses k5 = x^64 mod P;
//   Barrett: P' (reflected P with the x^32 bit) and μ' = floor(x^64 / P) reflected.
#include "laq_format_support.h"

#if defined(__x86_64__)
#include <immintrin.h>

static const uint64_t k1 = 0x154442bd4, k2 = 0x1c6e41596;
static const uint64_t k3 = 0x1751997d0, k4 = 0x0ccaa009e;
static const uint64_t k5 = 0x163cd6124;
static const uint64_t polynomial = 0x1db710641, mu = 0x1f7011641;

int laq_crc32_fold_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

/// x·(low half by k_low, high half by k_high) + next: one fold step.
__attribute__((target("pclmul,sse4.1")))
static inline __m128i fold(__m128i x, __m128i constants, __m128i next) {
    __m128i low = _mm_clmulepi64_si128(x, constants, 0x00);
    __m128i high = _mm_clmulepi64_si128(x, constants, 0x11);
    return _mm_xor_si128(_mm_xor_si128(low, high), next);
}

__attribute__((target("pclmul,sse4.1")))
uint32_t laq_crc32_fold(uint32_t crc, const uint8_t *bytes, size_t length) {
    const __m128i *blocks = (const __m128i *)bytes;
    __m128i x0 = _mm_loadu_si128(blocks + 0);
    __m128i x1 = _mm_loadu_si128(blocks + 1);
    __m128i x2 = _mm_loadu_si128(blocks + 2);
    __m128i x3 = _mm_loadu_si128(blocks + 3);
    // zlib's convention: the register starts as the inverted CRC, xored into the first bytes.
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)~crc));
    blocks += 4;
    length -= 64;

    const __m128i by4 = _mm_set_epi64x((long long)k2, (long long)k1);
    for (; length >= 64; length -= 64, blocks += 4) {
        x0 = fold(x0, by4, _mm_loadu_si128(blocks + 0));
        x1 = fold(x1, by4, _mm_loadu_si128(blocks + 1));
        x2 = fold(x2, by4, _mm_loadu_si128(blocks + 2));
        x3 = fold(x3, by4, _mm_loadu_si128(blocks + 3));
    }

    const __m128i by1 = _mm_set_epi64x((long long)k4, (long long)k3);
    __m128i x = fold(x0, by1, x1);
    x = fold(x, by1, x2);
    x = fold(x, by1, x3);
    for (; length >= 16; length -= 16, blocks += 1) {
        x = fold(x, by1, _mm_loadu_si128(blocks));
    }

    // 128 → 64 bits: the low half times k4, plus the high half.
    const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
    x = _mm_xor_si128(_mm_clmulepi64_si128(x, by1, 0x10), _mm_srli_si128(x, 8));
    // 64 → 32 bits: the low 32 bits times k5, plus the rest.
    const __m128i k5k0 = _mm_set_epi64x(0, (long long)k5);
    x = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x, mask32), k5k0, 0x00), _mm_srli_si128(x, 4));
    // Barrett reduction to the 32-bit remainder.
    const __m128i barrett = _mm_set_epi64x((long long)mu, (long long)polynomial);
    __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x, mask32), barrett, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, mask32), barrett, 0x00);
    x = _mm_xor_si128(x, t);
    return ~(uint32_t)_mm_extract_epi32(x, 1);
}

#else

int laq_crc32_fold_available(void) { return 0; }

uint32_t laq_crc32_fold(uint32_t crc, const uint8_t *bytes, size_t length) {
    (void)bytes; (void)length;
    return crc;  // never called: laq_crc32_fold_available() is 0
}

#endif
