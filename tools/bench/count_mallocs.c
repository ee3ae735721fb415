// Counts a process's heap allocations (malloc, realloc, posix_memalign, aligned_alloc; not
// calloc, which dlsym itself calls) and prints the totals to stderr at exit: how laq measures
// the allocations of a training step.
//
//     cc -O2 -shared -fPIC tools/bench/count_mallocs.c -o /tmp/count_mallocs.so -ldl
//     LD_PRELOAD=/tmp/count_mallocs.so .build/release/laq-bench --train MODEL.h5 --data BATCH.npz --steps 50
//     LD_PRELOAD=/tmp/count_mallocs.so .build/release/laq-bench --train MODEL.h5 --data BATCH.npz --steps 100
//
// The difference of the two counts over 50 is the allocations per step (start-up cancels out).
// Not part of the Swift build (Package.swift excludes it).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_long count, bytes;

static void counted(size_t size) {
    atomic_fetch_add(&count, 1);
    atomic_fetch_add(&bytes, (long)size);
}

void *malloc(size_t size) {
    static void *(*real)(size_t);
    if (!real) real = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    counted(size);
    return real(size);
}

void *realloc(void *pointer, size_t size) {
    static void *(*real)(void *, size_t);
    if (!real) real = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    counted(size);
    return real(pointer, size);
}

int posix_memalign(void **pointer, size_t alignment, size_t size) {
    static int (*real)(void **, size_t, size_t);
    if (!real) real = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    counted(size);
    return real(pointer, alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    static void *(*real)(size_t, size_t);
    if (!real) real = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    counted(size);
    return real(alignment, size);
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "count_mallocs: %ld allocations, %ld bytes\n", (long)count, (long)bytes);
}
