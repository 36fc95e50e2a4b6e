/* The main thread sleeps 2 s in one nanosleep() without retrying on EINTR (many programs
 * do), while a worker burns CPU. Prints whether the sleep was cut short. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include "util.h"

static volatile int stop;
volatile double sink;

static void *burn(void *arg) {
    (void)arg;
    double x = 1;
    while (!stop) for (int i = 0; i < 1000; i++) x = x * 1.0000001 + 0.1;
    sink = x;
    return NULL;
}

__attribute__((noinline)) int sleep_once(void) {
    struct timespec two = { 2, 0 };
    return nanosleep(&two, NULL);
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, burn, NULL);
    uint64_t start = mono_ns();
    int rc = sleep_once();
    int err = rc == 0 ? 0 : errno;
    uint64_t slept = mono_ns() - start;
    stop = 1;
    pthread_join(t, NULL);
    printf("rc=%d eintr=%d slept_ns=%llu main_tid=%ld\n", rc, err == EINTR, (unsigned long long)slept, kernel_tid());
    return 0;
}
