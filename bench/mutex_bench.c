/* Mutex workloads.
 *   mutex_bench uncontended N [idle]
 *                                 one thread, N lock/unlock pairs; prints ns per pair. With
 *                                 `idle`, a second thread sleeps meanwhile: glibc locks
 *                                 without atomic instructions while a process has a single
 *                                 thread, so this is the baseline of any multi-threaded
 *                                 program (and of one running the profiler's threads)
 *   mutex_bench contended T SECS  T threads share one mutex (short critical section, a little
 *                                 work outside it) for SECS; prints total acquisitions per second */
#include "common.h"
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t shared_counter;
static double run_seconds;
static pthread_barrier_t start_barrier;

static void *contender(void *arg) {
    uint64_t *out = arg, n = 0;
    volatile uint64_t local = 0;
    pthread_barrier_wait(&start_barrier);
    double end = now_s() + run_seconds;
    for (;;) {
        for (int i = 0; i < 1024; i++) {
            pthread_mutex_lock(&lock);
            for (int k = 0; k < 20; k++) shared_counter++;
            pthread_mutex_unlock(&lock);
            for (int k = 0; k < 50; k++) local++;
        }
        n += 1024;
        if (now_s() >= end) break;
    }
    *out = n;
    return NULL;
}

static void *sleep_forever(void *arg) {
    for (;;) pause();
    return arg;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "uncontended") == 0) {
        long n = (long)arg_d(argc, argv, 2, 2e7);
        if (argc > 3 && strcmp(argv[3], "idle") == 0) {
            pthread_t sleeper;
            pthread_create(&sleeper, NULL, sleep_forever, NULL);
        }
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            pthread_mutex_lock(&lock);
            shared_counter++;
            pthread_mutex_unlock(&lock);
        }
        double t1 = now_s();
        printf("value=%.6g\n", (t1 - t0) * 1e9 / (double)n);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "contended") == 0) {
        int threads = (int)arg_d(argc, argv, 2, 4);
        run_seconds = arg_d(argc, argv, 3, 0.5);
        pthread_t tid[64];
        uint64_t counts[64] = {0};
        if (threads < 1 || threads > 64) return 2;
        pthread_barrier_init(&start_barrier, NULL, (unsigned)threads + 1);
        for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, contender, &counts[i]);
        pthread_barrier_wait(&start_barrier);
        double t0 = now_s();
        uint64_t total = 0;
        for (int i = 0; i < threads; i++) { pthread_join(tid[i], NULL); total += counts[i]; }
        double t1 = now_s();
        printf("value=%.6g\n", (double)total / (t1 - t0));
        return 0;
    }
    fprintf(stderr, "usage: mutex_bench uncontended N | contended THREADS SECONDS\n");
    return 2;
}
