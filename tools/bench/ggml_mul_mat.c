// One product y = W·x with ggml's CPU backend, as llama.cpp runs a quantized layer: W (N rows of
// K weights) quantized to a ggml type, x float32 (batch columns of K), quantized by ggml to its
// 8-bit activation type inside the product. Prints the median milliseconds of `repeats` calls.
//
//     ggml_mul_mat TYPE K N BATCH THREADS REPEATS REPACK
//
// TYPE: a ggml type name (q2_K, q4_K, tq2_0, q3_K, …). REPACK 1 puts W in the CPU backend's
// extra buffer type (CPU_REPACK: the interleaved layouts llama.cpp uses by default where the
// CPU and type have one); 0 in the plain buffer. The threads are a persistent threadpool, as
// llama.cpp's. Built by tools/bench/compare_ggml.py against a ggml source tree.
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int compare(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// SplitMix64, for weights and inputs in [−1, 1].
static uint64_t state = 7;
static float uniform(void) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / (double)(1ull << 53) * 2 - 1);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s TYPE K N BATCH THREADS REPEATS REPACK\n", argv[0]);
        return 2;
    }
    const long k = atol(argv[2]), n = atol(argv[3]), batch = atol(argv[4]);
    const int threads = atoi(argv[5]), repeats = atoi(argv[6]), repack = atoi(argv[7]);
    enum ggml_type type = GGML_TYPE_COUNT;
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *name = ggml_type_name((enum ggml_type)t);
        if (name && strcmp(name, argv[1]) == 0) type = (enum ggml_type)t;
    }
    if (type == GGML_TYPE_COUNT || k <= 0 || n <= 0 || batch <= 0 || threads <= 0 || repeats <= 0) {
        fprintf(stderr, "ggml_mul_mat: bad arguments (type %s)\n", argv[1]);
        return 2;
    }
    ggml_backend_t backend = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(backend, threads);
    struct ggml_threadpool_params pool_params = ggml_threadpool_params_default(threads);
    struct ggml_threadpool *pool = ggml_threadpool_new(&pool_params);
    ggml_backend_cpu_set_threadpool(backend, pool);

    ggml_backend_buffer_type_t weight_type = ggml_backend_get_default_buffer_type(backend);
    if (repack) {
        ggml_backend_dev_t device = ggml_backend_get_device(backend);
        ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(device);
        ggml_backend_dev_get_extra_bufts_t extra =
            (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
        ggml_backend_buffer_type_t *types = extra ? extra(device) : NULL;
        for (; types && *types; types++)
            if (strcmp(ggml_backend_buft_name(*types), "CPU_REPACK") == 0) weight_type = *types;
        if (weight_type == ggml_backend_get_default_buffer_type(backend)) {
            fprintf(stderr, "ggml_mul_mat: no CPU_REPACK buffer type in this build\n");
            return 3;
        }
    }

    struct ggml_init_params params = {ggml_tensor_overhead() * 4 + ggml_graph_overhead(), NULL, true};
    struct ggml_context *weights = ggml_init(params), *inputs = ggml_init(params), *graph = ggml_init(params);
    struct ggml_tensor *w = ggml_new_tensor_2d(weights, type, k, n);
    struct ggml_tensor *x = ggml_new_tensor_2d(inputs, GGML_TYPE_F32, k, batch);
    ggml_backend_buffer_t weight_buffer = ggml_backend_alloc_ctx_tensors_from_buft(weights, weight_type);
    ggml_backend_buffer_set_usage(weight_buffer, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    ggml_backend_buffer_t input_buffer = ggml_backend_alloc_ctx_tensors(inputs, backend);
    if (!weight_buffer || !input_buffer) {
        fprintf(stderr, "ggml_mul_mat: no buffer\n");
        return 3;
    }

    float *values = malloc(sizeof(float) * (size_t)(k * n > k * batch ? k * n : k * batch));
    for (long i = 0; i < k * n; i++) values[i] = uniform();
    void *quantized = malloc(ggml_row_size(type, k) * (size_t)n);
    ggml_quantize_chunk(type, values, quantized, 0, n, k, NULL);
    ggml_backend_tensor_set(w, quantized, 0, ggml_nbytes(w));  // CPU_REPACK interleaves here
    for (long i = 0; i < k * batch; i++) values[i] = uniform();
    ggml_backend_tensor_set(x, values, 0, ggml_nbytes(x));

    struct ggml_tensor *y = ggml_mul_mat(graph, w, x);
    struct ggml_cgraph *gf = ggml_new_graph(graph);
    ggml_build_forward_expand(gf, y);
    ggml_gallocr_t allocator = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend));
    ggml_gallocr_alloc_graph(allocator, gf);

    double *times = malloc(sizeof(double) * (size_t)repeats);
    for (int i = 0; i < 3; i++) ggml_backend_graph_compute(backend, gf);
    for (int i = 0; i < repeats; i++) {
        const double start = now_ms();
        ggml_backend_graph_compute(backend, gf);
        times[i] = now_ms() - start;
    }
    qsort(times, (size_t)repeats, sizeof(double), compare);
    printf("{\"type\": \"%s\", \"k\": %ld, \"n\": %ld, \"batch\": %ld, \"threads\": %d, \"repack\": %d, \"median_ms\": %.6f, "
           "\"bits_per_weight\": %.4f}\n",
           argv[1], k, n, batch, threads, repack, times[repeats / 2], 8.0 * (double)ggml_nbytes(w) / (double)(k * n));
    return 0;
}
