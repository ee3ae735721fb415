// laq's C for LAQFormat: a folded CRC-32, early writeback, temporary files removed on signals
// and commands run in a child process. The one place LAQFormat runs C
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

/// Opens a new file in `directory` that has no name (O_TMPFILE; where the filesystem lacks it,
/// a mkstemp(3) file unlinked at once, which a crash between the two calls could leave), read-
/// write: it is freed when its last descriptor closes. Returns the descriptor, or -1 with errno.
int laq_spool_open(const char *directory);

/// Appends `count` bytes of `in_fd` from `in_offset` to `out_fd` at its file position, in the
/// kernel where it can (copy_file_range(2)), else by pread/write through a buffer. Returns 0, or
/// -1 with errno (EIO also when `in_fd` ends early).
int laq_copy_range(int in_fd, int64_t in_offset, int out_fd, int64_t count);

/// Creates a temporary file from `path_template` (mkstemp(3): it ends in XXXXXX, replaced) and
/// records it so that a termination signal (or, once laq_install_cleanup_handlers(1) ran, a
/// crash) removes it; a signal arriving in between is deferred to the end. At most 64 files are
/// recorded at once (more are created, not recorded). Returns
/// the descriptor and sets `slot`, or returns -1 with errno.
int laq_temporary_create(char *path_template, int *slot);

/// Forgets the temporary file of `slot` (it was renamed into place or removed); -1 is ignored.
void laq_temporary_remove(int slot);

/// Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT (except those already ignored), and
/// when `crashes` is nonzero for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP and SIGSYS:
/// each removes the recorded temporary files and ends the process with the same signal (and
/// unblocks the termination signals, in case the parent left them blocked). While
/// laq_run_child waits, termination signals are forwarded to the child instead. Also ignores
/// SIGXFSZ, so that a write past RLIMIT_FSIZE fails with EFBIG. Returns 0, or -1 with errno.
int laq_install_cleanup_handlers(int crashes);

/// Sets RLIMIT_CORE to 0: a process reading a hostile file leaves no core dump of it.
int laq_disable_core_dumps(void);

/// Runs `path` with `argv` and `envp` (NULL-terminated) in a child process, forwarding
/// SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, and waits for it. On return 0, `exit_code` is its
/// exit status (or -1) and `term_signal` the signal that ended it (or 0); -1 with errno when it
/// could not be started or waited for.
int laq_run_child(const char *path, char *const argv[], char *const envp[], int *exit_code, int *term_signal);

/// The address-space limit (RLIMIT_AS, `ulimit -v`) in bytes, or 0 when there is none.
uint64_t laq_address_space_limit(void);

/// Runs this program again (execv of /proc/self/exe with the same arguments) with the
/// environment variable `name` set to `value`. Returns only on failure (-1).
int laq_restart_with_environment(const char *name, const char *value);

#endif
