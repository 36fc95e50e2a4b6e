/* Contention on an rwlock or a semaphore, with the truth measured by the program itself.
 *   lock_kinds rwlock [rounds]  2 writers (writer_section, wrlock or clockwrlock, hold
 *                               60 us) and 2 readers (reader_section, rdlock or
 *                               timedrdlock, hold 40 us) share one rwlock
 *   lock_kinds sem [rounds]     4 threads pass one binary semaphore (sem_section, sem_wait
 *                               or sem_clockwait, hold 50 us) */
#include "util.h"
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4

pthread_rwlock_t shared_rwlock = PTHREAD_RWLOCK_INITIALIZER;
sem_t shared_sem;

struct stats {
    uint64_t wait, hold, count;
    char pad[64];
};
static struct stats stats[THREADS];
static long rounds;
volatile uint64_t sink;

static void spin_for(uint64_t ns) {
    uint64_t start = mono_ns();
    while (mono_ns() - start < ns) sink++;
}

static struct timespec far_future(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += 60;
    return ts;
}

__attribute__((noinline)) void writer_section(struct stats *st, long i) {
    uint64_t t0 = mono_ns();
    if (i % 2) {
        struct timespec ts = far_future(CLOCK_MONOTONIC);
        if (pthread_rwlock_clockwrlock(&shared_rwlock, CLOCK_MONOTONIC, &ts) != 0) abort();
    } else {
        pthread_rwlock_wrlock(&shared_rwlock);
    }
    uint64_t t1 = mono_ns();
    spin_for(60000);
    uint64_t t2 = mono_ns();
    pthread_rwlock_unlock(&shared_rwlock);
    st->wait += t1 - t0;
    st->hold += t2 - t1;
    st->count++;
}

__attribute__((noinline)) void reader_section(struct stats *st, long i) {
    uint64_t t0 = mono_ns();
    if (i % 2) {
        struct timespec ts = far_future(CLOCK_REALTIME);
        if (pthread_rwlock_timedrdlock(&shared_rwlock, &ts) != 0) abort();
    } else {
        pthread_rwlock_rdlock(&shared_rwlock);
    }
    uint64_t t1 = mono_ns();
    spin_for(40000);
    uint64_t t2 = mono_ns();
    pthread_rwlock_unlock(&shared_rwlock);
    st->wait += t1 - t0;
    st->hold += t2 - t1;
    st->count++;
}

__attribute__((noinline)) void sem_section(struct stats *st, long i) {
    uint64_t t0 = mono_ns();
    if (i % 2) {
        struct timespec ts = far_future(CLOCK_MONOTONIC);
        while (sem_clockwait(&shared_sem, CLOCK_MONOTONIC, &ts) != 0) {}
    } else {
        while (sem_wait(&shared_sem) != 0) {}
    }
    uint64_t t1 = mono_ns();
    spin_for(50000);
    uint64_t t2 = mono_ns();
    sem_post(&shared_sem);
    st->wait += t1 - t0;
    st->hold += t2 - t1;
    st->count++;
}

static int use_sem;

static void *worker(void *arg) {
    long t = (long)arg;
    for (long i = 0; i < rounds; i++) {
        if (use_sem) sem_section(&stats[t], i);
        else if (t < 2) writer_section(&stats[t], i);
        else reader_section(&stats[t], i);
        spin_for(20000);
    }
    return NULL;
}

int main(int argc, char **argv) {
    use_sem = argc > 1 && strcmp(argv[1], "sem") == 0;
    rounds = argc > 2 ? atol(argv[2]) : 1500;
    sem_init(&shared_sem, 0, 1);
    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)t);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    if (use_sem) {
        struct stats s = {0};
        for (int t = 0; t < THREADS; t++) {
            s.wait += stats[t].wait;
            s.count += stats[t].count;
        }
        printf("sem_wait_ns=%llu sem_count=%llu\n", (unsigned long long)s.wait, (unsigned long long)s.count);
    } else {
        printf("writer_wait_ns=%llu writer_hold_ns=%llu writer_count=%llu\n",
               (unsigned long long)(stats[0].wait + stats[1].wait), (unsigned long long)(stats[0].hold + stats[1].hold),
               (unsigned long long)(stats[0].count + stats[1].count));
        printf("reader_wait_ns=%llu reader_hold_ns=%llu reader_count=%llu\n",
               (unsigned long long)(stats[2].wait + stats[3].wait), (unsigned long long)(stats[2].hold + stats[3].hold),
               (unsigned long long)(stats[2].count + stats[3].count));
    }
    return 0;
}
