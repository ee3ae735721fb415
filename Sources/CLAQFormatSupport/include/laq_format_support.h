// laq's C for LAQFormat: a folded CRC-32 and early writeback. The one place LAQFormat runs C
// besides its two system libraries (zlib, libcrypto).
#ifndef LAQ_FORMAT_SUPPORT_H
#define LAQ_FORMAT_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/// Whether laq_crc32_fold runs (x86-64 with PCLMULQDQ and SSE4.1); when 0 it must not be called.
int laq_crc32_fold_available(void);

/// The CRC-32 of zlib (ISO-HDLC: reflected polynomial 0xEDB88320, initial and final inversion)
/// of `length` bytes at `bytes`, continuing `crc` as zlib's crc32(crc, bytes, length) does.
/// `length` must be a multiple of 16 and at least 64 (callers finish a tail with zlib).
///
/// The bytes are folded 64 at a time with carry-less multiplications by x^(512±32) mod P, then
/// 16 at a time, and the 128-bit remainder is reduced to 32 bits by Barrett reduction
/// (Gopal, Ozturk et al., "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ
/// Instruction", Intel, 2009). Same result as zlib, bit for bit (Tests/LAQFormatTests).
uint32_t laq_crc32_fold(uint32_t crc, const uint8_t *bytes, size_t length);

/// Starts writeback of `count` bytes at `offset` of `fd` to the disk without waiting for it
/// (sync_file_range(2) with SYNC_FILE_RANGE_WRITE), so that a later fsync waits only for what is
/// left. Returns 0, or -1 with errno set; callers may ignore failure (fsync still does the work).
int laq_start_writeback(int fd, int64_t offset, int64_t count);

#endif
