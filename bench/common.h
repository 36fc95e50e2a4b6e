/* Shared helpers for the bench workloads (timing, argument parsing). */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double arg_d(int argc, char **argv, int i, double dflt) {
    return argc > i ? atof(argv[i]) : dflt;
}
#endif
