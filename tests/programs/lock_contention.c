/* 4 threads fight over one global mutex in contended_section(), each holding it a known
 * time (a busy wait of 50..100 us), and each also takes its own private mutex in
 * private_section(). The program measures the truth itself: the time spent inside
 * pthread_mutex_lock (wait) and between lock and unlock (hold), per section.
 * Usage: lock_contention [rounds per thread] */
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4

pthread_mutex_t contended_lock = PTHREAD_MUTEX_INITIALIZER;

struct stats {
    uint64_t contended_wait, contended_hold, contended_count;
    uint64_t private_wait, private_hold, private_count;
    char pad[64];
};
static struct stats stats[THREADS];
static long rounds;
volatile uint64_t sink;

static void spin_for(uint64_t ns) {
    uint64_t start = mono_ns();
    while (mono_ns() - start < ns) sink++;
}

__attribute__((noinline)) void contended_section(struct stats *st, uint64_t hold_ns) {
    uint64_t t0 = mono_ns();
    pthread_mutex_lock(&contended_lock);
    uint64_t t1 = mono_ns();
    spin_for(hold_ns);
    uint64_t t2 = mono_ns();
    pthread_mutex_unlock(&contended_lock);
    st->contended_wait += t1 - t0;
    st->contended_hold += t2 - t1;
    st->contended_count++;
}

__attribute__((noinline)) void private_section(struct stats *st, pthread_mutex_t *own) {
    uint64_t t0 = mono_ns();
    pthread_mutex_lock(own);
    uint64_t t1 = mono_ns();
    spin_for(2000);
    uint64_t t2 = mono_ns();
    pthread_mutex_unlock(own);
    st->private_wait += t1 - t0;
    st->private_hold += t2 - t1;
    st->private_count++;
}

static void *worker(void *arg) {
    long t = (long)arg;
    struct stats *st = &stats[t];
    pthread_mutex_t *own = malloc(sizeof *own);
    pthread_mutex_init(own, NULL);
    for (long i = 0; i < rounds; i++) {
        contended_section(st, 50000 + 10000 * (uint64_t)((i + t) % 6));
        private_section(st, own);
    }
    pthread_mutex_destroy(own);
    free(own);
    return NULL;
}

int main(int argc, char **argv) {
    rounds = argc > 1 ? atol(argv[1]) : 1500;
    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)t);
    struct stats total = {0};
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        total.contended_wait += stats[t].contended_wait;
        total.contended_hold += stats[t].contended_hold;
        total.contended_count += stats[t].contended_count;
        total.private_wait += stats[t].private_wait;
        total.private_hold += stats[t].private_hold;
        total.private_count += stats[t].private_count;
    }
    printf("contended_wait_ns=%llu contended_hold_ns=%llu contended_count=%llu\n",
           (unsigned long long)total.contended_wait, (unsigned long long)total.contended_hold,
           (unsigned long long)total.contended_count);
    printf("private_wait_ns=%llu private_hold_ns=%llu private_count=%llu\n",
           (unsigned long long)total.private_wait, (unsigned long long)total.private_hold,
           (unsigned long long)total.private_count);
    return 0;
}
