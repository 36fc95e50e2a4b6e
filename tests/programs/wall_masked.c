/* A thread that blocks every signal (as some runtimes' threads do) and spins for 2 s: the wall
 * sampler can never make it capture its stack, but its time must still be accounted. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include "util.h"

volatile double sink;
static uint64_t lived;
static long tid;

static void *masked(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    tid = kernel_tid();
    uint64_t start = mono_ns();
    double x = 1;
    while (mono_ns() - start < 2000000000ull) for (int i = 0; i < 1000; i++) x = x * 1.0000001 + 0.1;
    sink = x;
    lived = mono_ns() - start;
    return NULL;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, masked, NULL);
    pthread_join(t, NULL);
    printf("tid=%ld lived_ns=%llu\n", tid, (unsigned long long)lived);
    return 0;
}
