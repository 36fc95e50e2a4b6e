/* A worker that alternates 100 ms of CPU burn (in burn_phase) with 100 ms of sleep (in
 * sleep_phase, clock_nanosleep to an absolute deadline so an EINTR just resumes), for about
 * 4 s, while main blocks in pthread_join. Prints the measured split and main's lifetime. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include "util.h"

volatile double sink;
static uint64_t burn_ns, sleep_ns;

__attribute__((noinline)) void burn_phase(uint64_t ns) {
    uint64_t start = mono_ns();
    double x = 1;
    while (mono_ns() - start < ns) for (int i = 0; i < 1000; i++) x = x * 1.0000001 + 0.1;
    sink = x;
    burn_ns += mono_ns() - start;
}

__attribute__((noinline)) void sleep_phase(uint64_t ns) {
    uint64_t start = mono_ns();
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += (long)ns;
    while (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR) {}
    sleep_ns += mono_ns() - start;
}

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) { burn_phase(100000000); sleep_phase(100000000); }
    return NULL;
}

int main(void) {
    uint64_t start = mono_ns();
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    printf("burn_ns=%llu sleep_ns=%llu main_tid=%ld main_ns=%llu\n", (unsigned long long)burn_ns,
           (unsigned long long)sleep_ns, kernel_tid(), (unsigned long long)(mono_ns() - start));
    return 0;
}
