/* Uncontended pthread_mutex_lock + unlock pairs in one thread: prints the CPU time of one pair
 * (the best of several rounds) so runs with and without the library can be compared.
 * Usage: lock_uncontended [pairs] [threaded]. With "threaded" an idle second thread exists, as
 * in any multi-threaded program (and in any program running the profiler's exporter thread):
 * glibc then uses atomic instructions instead of its single-threaded shortcut. */
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
volatile long counter;

__attribute__((noinline)) static void pairs(long n) {
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&mu);
        counter++;
        pthread_mutex_unlock(&mu);
    }
}

static void *idle(void *arg) {
    (void)arg;
    pause();
    return NULL;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20000000;
    if (argc > 2 && argv[2][0] == 't') {
        pthread_t t;
        pthread_create(&t, NULL, idle, NULL);
    }
    double best = 1e30;
    pairs(n / 10);
    for (int round = 0; round < 15; round++) {
        uint64_t t0 = thread_cpu_ns();
        pairs(n);
        double per = (double)(thread_cpu_ns() - t0) / (double)n;
        if (per < best) best = per;
    }
    printf("ns_per_pair=%.2f pairs=%ld\n", best, n);
    return 0;
}
