/* Creates and joins argv[1] threads (default 100000), argv[2] at a time (default 8); each
 * allocates a little and returns. Reports the resident memory and the number of POSIX
 * timers of the process (/proc/self/timers) after a warm-up of 2000 threads, at the peak
 * (while a wave is alive) and at the end:
 *   rss_before_kb=R timers_before=T
 *   timers_peak=P
 *   rss_half_kb=R timers_half=T          (after half of the threads)
 *   rss_after_kb=R timers_after=T threads=N elapsed_ns=E                               */
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static int timers(void) {
    FILE *f = fopen("/proc/self/timers", "r");
    if (!f) return -1;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "ID:", 3) == 0) n++;
    fclose(f);
    return n;
}

static pthread_barrier_t wave_barrier;
static volatile int use_barrier;

static void *work(void *arg) {
    char *p = malloc(64 + (size_t)(uintptr_t)arg % 256);
    if (p) p[0] = 1;
    free(p);
    if (use_barrier) pthread_barrier_wait(&wave_barrier);
    return NULL;
}

static void waves(long total, int width) {
    pthread_t t[64];
    for (long done = 0; done < total; done += width) {
        for (int i = 0; i < width; i++)
            if (pthread_create(&t[i], NULL, work, (void *)(uintptr_t)(done + i)) != 0) {
                perror("pthread_create");
                exit(1);
            }
        for (int i = 0; i < width; i++) pthread_join(t[i], NULL);
    }
}

int main(int argc, char **argv) {
    long total = argc > 1 ? atol(argv[1]) : 100000;
    int width = argc > 2 ? atoi(argv[2]) : 8;
    if (width < 1 || width > 64) width = 8;
    waves(2000, width);
    long rss_before = rss_kb();
    int timers_before = timers();
    printf("rss_before_kb=%ld timers_before=%d\n", rss_before, timers_before);

    /* One wave held alive at a barrier: each live thread should have its timer. */
    pthread_t t[64];
    pthread_barrier_init(&wave_barrier, NULL, (unsigned)width + 1);
    use_barrier = 1;
    for (int i = 0; i < width; i++) pthread_create(&t[i], NULL, work, NULL);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL); /* let them all reach the barrier */
    printf("timers_peak=%d\n", timers());
    pthread_barrier_wait(&wave_barrier);
    for (int i = 0; i < width; i++) pthread_join(t[i], NULL);
    use_barrier = 0;

    uint64_t started = mono_ns();
    waves(total / 2, width);
    printf("rss_half_kb=%ld timers_half=%d\n", rss_kb(), timers());
    waves(total - total / 2, width);
    uint64_t elapsed = mono_ns() - started;
    printf("rss_after_kb=%ld timers_after=%d threads=%ld elapsed_ns=%llu\n", rss_kb(), timers(),
           total, (unsigned long long)elapsed);
    return 0;
}
