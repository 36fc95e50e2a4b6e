/* CPU-bound program.
 *   cpu_bench work ROUNDS          one thread, a fixed amount of work (the harness times the process)
 *   cpu_bench busy THREADS SECS    THREADS threads spin on the same work (plus a few allocations)
 *                                  for SECS */
#include "common.h"
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static volatile uint64_t sink;

__attribute__((noinline)) static uint64_t mix(uint64_t x, int n) {
    for (int i = 0; i < n; i++) { x ^= x << 7; x ^= x >> 9; x *= 0x9E3779B97F4A7C15ull; }
    return x;
}

__attribute__((noinline)) static uint64_t leaf_a(uint64_t x) { return mix(x, 4000); }
__attribute__((noinline)) static uint64_t leaf_b(uint64_t x) { return mix(x + 1, 2000); }

__attribute__((noinline)) static uint64_t one_round(uint64_t x) {
    x = leaf_a(x);
    x = leaf_b(x);
    return x;
}

static double busy_seconds;

static void *busy(void *arg) {
    uint64_t x = (uintptr_t)arg + 1;
    double end = now_s() + busy_seconds;
    while (now_s() < end) {
        for (int i = 0; i < 200; i++) x = one_round(x);
        char *p = malloc(4096 + (x & 4095));
        p[0] = (char)x;
        free(p);
    }
    sink = x;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "work") == 0) {
        long rounds = (long)arg_d(argc, argv, 2, 100000);
        uint64_t x = 1;
        for (long i = 0; i < rounds; i++) x = one_round(x);
        sink = x;
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "busy") == 0) {
        int threads = (int)arg_d(argc, argv, 2, 4);
        busy_seconds = arg_d(argc, argv, 3, 10);
        pthread_t tid[64];
        if (threads < 1 || threads > 64) return 2;
        for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, busy, (void *)(uintptr_t)i);
        for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
        return 0;
    }
    fprintf(stderr, "usage: cpu_bench work ROUNDS | busy THREADS SECONDS\n");
    return 2;
}
