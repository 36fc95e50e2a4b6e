/* malloc/free pair throughput: malloc_bench THREADS SECONDS
 * Each thread allocates a block of a pseudo-random size (16..1039 bytes), touches it and frees it,
 * for SECONDS. Prints the total pairs per second over all threads. */
#include "common.h"
#include <pthread.h>
#include <stdint.h>

static double run_seconds;
static pthread_barrier_t start_barrier;

static void *worker(void *arg) {
    uint64_t *out = arg;
    uint32_t x = 2463534242u ^ (uint32_t)(uintptr_t)out;
    uint64_t pairs = 0;
    pthread_barrier_wait(&start_barrier);
    double end = now_s() + run_seconds;
    for (;;) {
        for (int i = 0; i < 4096; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            size_t size = 16 + (x & 1023);
            volatile char *p = malloc(size);
            p[0] = (char)i;
            free((void *)p);
        }
        pairs += 4096;
        if (now_s() >= end) break;
    }
    *out = pairs;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_d(argc, argv, 1, 1);
    run_seconds = arg_d(argc, argv, 2, 0.5);
    pthread_t tid[64];
    uint64_t counts[64] = {0};
    if (threads < 1 || threads > 64) return 2;
    pthread_barrier_init(&start_barrier, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, worker, &counts[i]);
    pthread_barrier_wait(&start_barrier);
    double t0 = now_s();
    uint64_t total = 0;
    for (int i = 0; i < threads; i++) { pthread_join(tid[i], NULL); total += counts[i]; }
    double t1 = now_s();
    printf("value=%.6g\n", (double)total / (t1 - t0));
    return 0;
}
