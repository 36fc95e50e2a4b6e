/* A C program that gives every profile type something to record, for SECS seconds: the
 * memory rows of make bench run it without and with the library (exporting every 0.5 s) and
 * compare its RSS.
 *
 *   mem_mix THREADS SECS
 *
 * Each of THREADS threads loops: some CPU work, allocations of 16 B..8 KiB of which the
 * last 512 per thread stay live (the live heap turns over, ~2 MiB in all for 4 threads), a mutex shared
 * by all threads held for a little work (contention), and a 1 ms sleep (off-CPU wall time). */
#include "common.h"
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define LIVE 512

static double run_seconds;
static pthread_mutex_t shared = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t sink;

__attribute__((noinline)) static uint64_t work(uint64_t x, int n) {
    for (int i = 0; i < n; i++) { x ^= x << 7; x ^= x >> 9; x *= 0x9E3779B97F4A7C15ull; }
    return x;
}

__attribute__((noinline)) static void *alloc_block(uint64_t x) {
    size_t size = 16 + (size_t)(x % 8176);
    char *p = malloc(size);
    memset(p, (int)x, size < 256 ? size : 256);
    return p;
}

__attribute__((noinline)) static uint64_t locked_work(uint64_t x) {
    pthread_mutex_lock(&shared);
    x = work(x, 40000);
    pthread_mutex_unlock(&shared);
    return x;
}

static void *loop(void *arg) {
    uint64_t x = (uintptr_t)arg * 7919 + 1;
    void *live[LIVE] = {0};
    unsigned next = 0;
    double end = now_s() + run_seconds;
    while (now_s() < end) {
        x = work(x, 20000);
        for (int i = 0; i < 16; i++) {
            x = work(x, 8);
            free(live[next]);
            live[next] = alloc_block(x);
            next = (next + 1) % LIVE;
        }
        x = locked_work(x);
        usleep(1000);
    }
    for (unsigned i = 0; i < LIVE; i++) free(live[i]);
    sink = x;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_d(argc, argv, 1, 4);
    run_seconds = arg_d(argc, argv, 2, 12);
    pthread_t tid[64];
    if (threads < 1 || threads > 64) return 2;
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, loop, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    return 0;
}
