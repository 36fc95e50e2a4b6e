/* cpu_burn: a small CPU-bound demo for libddprof.
 *
 * The main thread splits its time between two hot functions (hash_numbers
 * takes roughly twice the time of sum_series, depending on the CPU),
 * while a second thread, named "burner", loops in background_spin (which
 * calls hash_numbers too). Runs ~3 s.
 *
 *   cc -O2 -g -pthread -o cpu_burn examples/cpu_burn.c
 *   DD_PROFILING_OUTPUT_PPROF=/tmp/cpu/burn scripts/ddprof-run ./cpu_burn
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define RUN_SECONDS 3.0

static volatile uint64_t sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Integer hashing: pure ALU work. */
__attribute__((noinline)) static uint64_t hash_numbers(uint64_t rounds) {
    uint64_t h = 1469598103934665603ULL;
    for (uint64_t i = 0; i < rounds; i++) {
        h ^= i;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Floating point series: a second, separate hot spot. */
__attribute__((noinline)) static double sum_series(uint64_t terms) {
    double s = 0.0;
    for (uint64_t k = 1; k <= terms; k++)
        s += 1.0 / ((double)k * (double)k);
    return s;
}

/* Runs in its own thread for the whole program. */
__attribute__((noinline)) static void *background_spin(void *arg) {
    double end = *(const double *)arg;
    uint64_t x = 0;
    while (now() < end)
        x += hash_numbers(200000) & 1;
    sink += x;
    return NULL;
}

int main(void) {
    double end = now() + RUN_SECONDS;
    pthread_t t;
    if (pthread_create(&t, NULL, background_spin, &end) != 0) {
        perror("pthread_create");
        return 1;
    }
    pthread_setname_np(t, "burner");

    uint64_t rounds = 0;
    while (now() < end) {
        sink += hash_numbers(400000);          /* ~2/3 of main's time */
        sink += (uint64_t)sum_series(160000);  /* ~1/3 of main's time */
        rounds++;
    }
    pthread_join(t, NULL);
    printf("cpu_burn: %llu rounds in %.1f s\n", (unsigned long long)rounds, RUN_SECONDS);
    return 0;
}
