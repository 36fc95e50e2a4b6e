/* Four threads named burner-0..3 burn 0.2, 0.4, 0.6 and 0.8 s of their own CPU time.
 * Each prints:  thread idx=I tid=T name=burner-I cpu_ns=N
 * and main prints at the end:  process_cpu_ns=N                                         */
#include "util.h"
#include <pthread.h>
#include <stdio.h>

volatile uint64_t sink;

__attribute__((noipa)) void spin(uint64_t n) {
    uint64_t x = sink | 1;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    sink = x;
}

static void *worker(void *arg) {
    int idx = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "burner-%d", idx);
    pthread_setname_np(pthread_self(), name);
    uint64_t target = (uint64_t)(idx + 1) * 200000000ull;
    while (thread_cpu_ns() < target) spin(100000);
    printf("thread idx=%d tid=%ld name=%s cpu_ns=%llu\n", idx, kernel_tid(), name,
           (unsigned long long)thread_cpu_ns());
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("process_cpu_ns=%llu\n", (unsigned long long)process_cpu_ns());
    return 0;
}
