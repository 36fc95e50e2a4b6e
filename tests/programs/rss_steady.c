/* A program whose own memory use is flat after its first second, giving every profile type
 * something to record: THREADS threads loop over CPU work, allocations of 16 B..8 KiB of which
 * the last 512 per thread stay live (the live heap turns over at a fixed size), a mutex shared
 * by all of them held for a little work, and a 1 ms sleep. The main thread prints its resident
 * set (VmRSS, KiB) every 250 ms, so a test can tell whether the profiler's memory grows from
 * one export period to the next (tests/memory.rs); the memory rows of `make bench` run it
 * without and with the library and compare its peak and last RSS.
 *
 *   rss_steady THREADS SECS      prints `t_ms=<ms> rss_kib=<KiB>` lines, then `done=1` */
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE 512

static uint64_t end_ns;
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
    while (mono_ns() < end_ns) {
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

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    double secs = argc > 2 ? atof(argv[2]) : 12;
    if (threads < 1 || threads > 64) return 2;
    uint64_t start = mono_ns();
    end_ns = start + (uint64_t)(secs * 1e9);
    pthread_t tid[64];
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, loop, (void *)(uintptr_t)i);
    while (mono_ns() < end_ns) {
        usleep(250000);
        printf("t_ms=%llu rss_kib=%ld\n", (unsigned long long)((mono_ns() - start) / 1000000), rss_kib());
        fflush(stdout);
    }
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    printf("done=1\n");
    return 0;
}
