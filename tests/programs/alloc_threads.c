/* 4 threads x N allocate/free pairs of random sizes (16..4096 bytes); each thread totals
 * what it allocated. Prints the totals and the peak RSS. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#define THREADS 4
static long pairs;
static long bytes[THREADS];
void *volatile sink;

__attribute__((noinline)) void churn(int t) {
    unsigned x = 12345u + 7919u * (unsigned)t;
    long total = 0;
    for (long i = 0; i < pairs; i++) {
        x = x * 1103515245u + 12345u;
        size_t size = 16 + (x >> 8) % 4081;
        char *p = malloc(size);
        p[0] = 1;
        sink = p;
        free(p);
        total += (long)size;
    }
    bytes[t] = total;
}

static void *worker(void *arg) { churn((int)(long)arg); return NULL; }

int main(int argc, char **argv) {
    pairs = argc > 1 ? atol(argv[1]) : 5000000;
    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)t);
    long total = 0;
    for (int t = 0; t < THREADS; t++) { pthread_join(th[t], NULL); total += bytes[t]; }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("churn_bytes=%ld churn_count=%ld maxrss_kib=%ld\n", total, pairs * THREADS, ru.ru_maxrss);
    return 0;
}
