// Temporary files removed on signals, and commands run in a child process. Signal handlers may
// only call async-signal-safe functions (signal-safety(7)): unlink, kill, signal, raise and
// atomic loads and stores on static storage, nothing that allocates or locks.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "laq_format_support.h"

#define LAQ_TEMPORARY_SLOTS 64
#define LAQ_TEMPORARY_PATH 4096

// A slot is free (0), being filled or emptied (1), or holds a path a handler may unlink (2).
static int slot_state[LAQ_TEMPORARY_SLOTS];
static char slot_path[LAQ_TEMPORARY_SLOTS][LAQ_TEMPORARY_PATH];

// Records `path` in a free slot for the handlers; the slot, or -1 when the path is too long or
// all slots are taken (the file is then not removed on a signal).
static int temporary_add(const char *path) {
    size_t length = strlen(path);
    if (length >= LAQ_TEMPORARY_PATH) return -1;
    for (int slot = 0; slot < LAQ_TEMPORARY_SLOTS; slot++) {
        int expected = 0;
        if (__atomic_compare_exchange_n(&slot_state[slot], &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            memcpy(slot_path[slot], path, length + 1);
            __atomic_store_n(&slot_state[slot], 2, __ATOMIC_RELEASE);
            return slot;
        }
    }
    return -1;
}

void laq_temporary_remove(int slot) {
    if (slot < 0 || slot >= LAQ_TEMPORARY_SLOTS) return;
    __atomic_store_n(&slot_state[slot], 1, __ATOMIC_RELEASE);
    __atomic_store_n(&slot_state[slot], 0, __ATOMIC_RELEASE);
}

static void remove_temporaries(void) {
    for (int slot = 0; slot < LAQ_TEMPORARY_SLOTS; slot++) {
        if (__atomic_load_n(&slot_state[slot], __ATOMIC_ACQUIRE) == 2) unlink(slot_path[slot]);
    }
}

static const int termination_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};

// The child a supervising process forwards termination signals to (0: none).
static volatile pid_t supervised_child = 0;

// Threads inside a step a termination signal must not split (a temporary file created but not
// yet recorded; a child started but its pid not yet known), and the signal that came meanwhile.
// Blocking the signal in that thread is not enough: the kernel delivers a process-directed
// signal to any thread that does not block it (OpenBLAS' workers). The handler defers it, and
// the thread that ends the last such step raises it again.
static int deferring = 0;
static volatile sig_atomic_t deferred = 0;

static void begin_deferring(void) { __atomic_add_fetch(&deferring, 1, __ATOMIC_SEQ_CST); }

static void end_deferring(void) {
    if (__atomic_sub_fetch(&deferring, 1, __ATOMIC_SEQ_CST) == 0) {
        int pending = deferred;
        if (pending) {
            deferred = 0;
            kill(getpid(), pending);
        }
    }
}

static void on_signal(int signal_number) {
    int saved = errno;
    // A crash cannot wait: only termination signals are deferred.
    int crash = 0;
    for (size_t i = 0; i < sizeof crash_signals / sizeof *crash_signals; i++) crash |= signal_number == crash_signals[i];
    if (!crash && __atomic_load_n(&deferring, __ATOMIC_SEQ_CST) > 0) {
        deferred = signal_number;
        errno = saved;
        return;
    }
    pid_t child = supervised_child;
    if (child > 0) {
        // The child removes its own temporaries and exits; the parent reports how it ended.
        kill(child, signal_number);
        errno = saved;
        return;
    }
    remove_temporaries();
    // Die of the same signal, with its default action, so the caller sees how the process ended.
    signal(signal_number, SIG_DFL);
    raise(signal_number);
    errno = saved;
}

int laq_temporary_create(char *path_template, int *slot) {
    // No termination signal between the file's creation and its record (it would leave the
    // file behind): one arriving meanwhile is deferred to the end.
    begin_deferring();
    int fd = mkstemp(path_template);
    int saved = errno;
    *slot = fd >= 0 ? temporary_add(path_template) : -1;
    end_deferring();
    errno = saved;
    return fd;
}


int laq_install_cleanup_handlers(int crashes) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    // A second signal during the cleanup waits for it; the handler ends the process anyway.
    for (size_t i = 0; i < sizeof termination_signals / sizeof *termination_signals; i++) {
        sigaddset(&action.sa_mask, termination_signals[i]);
    }
    for (size_t i = 0; i < sizeof termination_signals / sizeof *termination_signals; i++) {
        struct sigaction old;
        // A signal the caller ignores (nohup, a background job's SIGINT) stays ignored.
        if (sigaction(termination_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        if (sigaction(termination_signals[i], &action, NULL) != 0) return -1;
    }
    if (crashes) {
        action.sa_flags = SA_RESETHAND | SA_NODEFER;
        for (size_t i = 0; i < sizeof crash_signals / sizeof *crash_signals; i++) {
            if (sigaction(crash_signals[i], &action, NULL) != 0) return -1;
        }
    }
    // A parent may start laq with these signals blocked (a thread's mask is inherited: test
    // runners' worker threads block them), which would defer them past the end of the write.
    sigset_t termination;
    sigemptyset(&termination);
    for (size_t i = 0; i < sizeof termination_signals / sizeof *termination_signals; i++) sigaddset(&termination, termination_signals[i]);
    sigprocmask(SIG_UNBLOCK, &termination, NULL);
    // Past RLIMIT_FSIZE a write fails with EFBIG (an error laq reports) instead of SIGXFSZ
    // killing the process.
    signal(SIGXFSZ, SIG_IGN);
    return 0;
}

int laq_disable_core_dumps(void) {
    struct rlimit none = {0, 0};
    return setrlimit(RLIMIT_CORE, &none);
}

int laq_run_child(const char *path, char *const argv[], char *const envp[], int *exit_code, int *term_signal) {
    *exit_code = -1;
    *term_signal = 0;
    // A signal arriving while the child starts is deferred until its pid is known, then
    // forwarded. The child keeps the signals this process ignores ignored (exec resets handled
    // ones to their default), as `nohup` and background jobs expect.
    begin_deferring();
    pid_t child;
    int failed = posix_spawn(&child, path, NULL, NULL, argv, envp);
    if (failed) {
        end_deferring();
        errno = failed;
        return -1;
    }
    supervised_child = child;
    end_deferring();
    int status;
    pid_t waited;
    do {
        waited = waitpid(child, &status, 0);
    } while (waited < 0 && errno == EINTR);
    supervised_child = 0;
    if (waited < 0) return -1;
    if (WIFEXITED(status)) *exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) *term_signal = WTERMSIG(status);
    return 0;
}

uint64_t laq_address_space_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 0;
    return (uint64_t)limit.rlim_cur;
}

int laq_restart_with_environment(const char *name, const char *value) {
    // The command line, as the kernel keeps it: NUL-separated arguments.
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    static char buffer[1 << 18];
    size_t length = 0;
    for (;;) {
        ssize_t got = read(fd, buffer + length, sizeof buffer - 1 - length);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        length += (size_t)got;
        if (length == sizeof buffer - 1) { close(fd); return -1; }
    }
    close(fd);
    buffer[length] = 0;
    static char *argv[4096];
    size_t count = 0;
    for (size_t at = 0; at < length && count < sizeof argv / sizeof *argv - 1; at += strlen(buffer + at) + 1) argv[count++] = buffer + at;
    argv[count] = NULL;
    if (count == 0 || setenv(name, value, 1) != 0) return -1;
    execv("/proc/self/exe", argv);
    unsetenv(name);
    return -1;
}
