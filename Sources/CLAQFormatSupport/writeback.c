#define _GNU_SOURCE
#include <fcntl.h>

#include "laq_format_support.h"

int laq_start_writeback(int fd, int64_t offset, int64_t count) {
#ifdef __linux__
    return sync_file_range(fd, (off64_t)offset, (off64_t)count, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)count;
    return 0;
#endif
}

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int laq_spool_open(const char *directory) {
#ifdef O_TMPFILE
    int fd = open(directory, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    // EOPNOTSUPP / EISDIR / EINVAL: the filesystem (or kernel) has no O_TMPFILE.
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return -1;
#endif
    size_t length = strlen(directory) + sizeof("/.laq-spool-XXXXXX");
    char *path = malloc(length);
    if (!path) { errno = ENOMEM; return -1; }
    snprintf(path, length, "%s/.laq-spool-XXXXXX", directory);
    int fd2 = mkostemp(path, O_CLOEXEC);
    if (fd2 >= 0 && unlink(path) != 0) {
        int saved = errno;
        close(fd2);
        unlink(path);
        free(path);
        errno = saved;
        return -1;
    }
    int saved = errno;
    free(path);
    errno = saved;
    return fd2;
}

static int copy_through_buffer(int in_fd, int64_t in_offset, int out_fd, int64_t count) {
    enum { chunk = 1 << 20 };
    char *buffer = malloc(chunk);
    if (!buffer) { errno = ENOMEM; return -1; }
    while (count > 0) {
        ssize_t got = pread(in_fd, buffer, count < chunk ? (size_t)count : chunk, (off_t)in_offset);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) { free(buffer); if (got == 0) errno = EIO; return -1; }
        for (ssize_t done = 0; done < got;) {
            ssize_t put = write(out_fd, buffer + done, (size_t)(got - done));
            if (put < 0 && errno == EINTR) continue;
            if (put < 0) { int saved = errno; free(buffer); errno = saved; return -1; }
            done += put;
        }
        in_offset += got;
        count -= got;
    }
    free(buffer);
    return 0;
}

int laq_copy_range(int in_fd, int64_t in_offset, int out_fd, int64_t count) {
#ifdef __linux__
    loff_t offset = (loff_t)in_offset;
    while (count > 0) {
        ssize_t copied = copy_file_range(in_fd, &offset, out_fd, NULL, (size_t)count, 0);
        if (copied < 0 && errno == EINTR) continue;
        if (copied < 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) {
            return copy_through_buffer(in_fd, (int64_t)offset, out_fd, count);
        }
        if (copied < 0) return -1;
        if (copied == 0) { errno = EIO; return -1; }
        count -= copied;
    }
    return 0;
#else
    return copy_through_buffer(in_fd, in_offset, out_fd, count);
#endif
}
