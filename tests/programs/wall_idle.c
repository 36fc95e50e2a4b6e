/* 500 idle threads (blocked on a condition variable) and one busy thread for 5 s. Each
 * thread prints its tid and how long it lived (monotonic). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "util.h"

#define IDLE 500
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;
static long tids[IDLE + 1];
static uint64_t lived[IDLE + 1];
volatile double sink;

__attribute__((noinline)) void idle_wait(void) {
    pthread_mutex_lock(&mu);
    while (!done) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

__attribute__((noinline)) void busy_loop(uint64_t until) {
    double x = 1;
    while (mono_ns() < until) for (int i = 0; i < 1000; i++) x = x * 1.0000001 + 0.1;
    sink = x;
}

static uint64_t end_at;

static void *idle_thread(void *arg) {
    long i = (long)arg;
    uint64_t start = mono_ns();
    tids[i] = kernel_tid();
    idle_wait();
    lived[i] = mono_ns() - start;
    return NULL;
}

static void *busy_thread(void *arg) {
    long i = (long)arg;
    uint64_t start = mono_ns();
    tids[i] = kernel_tid();
    busy_loop(end_at);
    lived[i] = mono_ns() - start;
    return NULL;
}

int main(void) {
    pthread_t th[IDLE + 1];
    end_at = mono_ns() + 5000000000ull;
    for (long i = 0; i < IDLE; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        pthread_create(&th[i], &attr, idle_thread, (void *)i);
        pthread_attr_destroy(&attr);
    }
    pthread_create(&th[IDLE], NULL, busy_thread, (void *)(long)IDLE);
    pthread_join(th[IDLE], NULL);
    pthread_mutex_lock(&mu);
    done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < IDLE; i++) pthread_join(th[i], NULL);
    for (int i = 0; i <= IDLE; i++) printf("tid=%ld lived_ns=%llu\n", tids[i], (unsigned long long)lived[i]);
    return 0;
}
