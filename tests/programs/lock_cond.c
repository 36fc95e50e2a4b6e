/* Producer/consumer over a bounded queue guarded by one global mutex and two condition
 * variables. 2 producers, 2 consumers; every item is checked on arrival. The program measures
 * how long the queue mutex is held (from each acquisition or condition-wait return to the
 * next condition wait or unlock) and how long threads sleep in condition waits; consumers
 * wait much longer than anyone holds the mutex.
 * Usage: lock_cond [items per producer] */
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define CAPACITY 8
#define PRODUCERS 2
#define CONSUMERS 2

pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static long queue[CAPACITY];
static int head, count, producers_left = PRODUCERS;
static long items;
volatile uint64_t sink;

struct stats {
    uint64_t hold, cond_wait, done;
    long sum;
    char pad[64];
};
static struct stats pstats[PRODUCERS], cstats[CONSUMERS];

static void spin_for(uint64_t ns) {
    uint64_t start = mono_ns();
    while (mono_ns() - start < ns) sink++;
}

/* Waits on `cond`, accounting the hold so far and the time asleep. */
static void wait_on(pthread_cond_t *cond, struct stats *st, uint64_t *held_since, int timed) {
    uint64_t t0 = mono_ns();
    st->hold += t0 - *held_since;
    if (timed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(cond, &queue_lock, &ts);
    } else {
        pthread_cond_wait(cond, &queue_lock);
    }
    *held_since = mono_ns();
    st->cond_wait += *held_since - t0;
}

__attribute__((noinline)) void produce(struct stats *st, long value) {
    pthread_mutex_lock(&queue_lock);
    uint64_t held_since = mono_ns();
    while (count == CAPACITY) wait_on(&not_full, st, &held_since, 0);
    spin_for(10000);
    queue[(head + count) % CAPACITY] = value;
    count++;
    pthread_cond_signal(&not_empty);
    uint64_t held = mono_ns() - held_since;
    pthread_mutex_unlock(&queue_lock);
    st->hold += held; /* after the unlock: no tail call, produce stays on the stack */
    st->sum += value;
}

/* Returns 0 when every producer is done and the queue is empty. */
__attribute__((noinline)) int consume(struct stats *st, long *value) {
    pthread_mutex_lock(&queue_lock);
    uint64_t held_since = mono_ns();
    while (count == 0 && producers_left > 0) wait_on(&not_empty, st, &held_since, st->done % 2);
    int got = count > 0;
    if (got) {
        spin_for(10000);
        *value = queue[head];
        head = (head + 1) % CAPACITY;
        count--;
        pthread_cond_signal(&not_full);
    }
    st->hold += mono_ns() - held_since;
    pthread_mutex_unlock(&queue_lock);
    return got;
}

static void *producer(void *arg) {
    struct stats *st = &pstats[(long)arg];
    for (long i = 1; i <= items; i++) {
        produce(st, i);
        spin_for(100000); /* producers are slow: consumers sleep in condition waits */
    }
    pthread_mutex_lock(&queue_lock);
    producers_left--;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&queue_lock);
    return NULL;
}

static void *consumer(void *arg) {
    struct stats *st = &cstats[(long)arg];
    long value;
    while (consume(st, &value)) {
        st->sum += value;
        st->done++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    items = argc > 1 ? atol(argv[1]) : 3000;
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (long i = 0; i < CONSUMERS; i++) pthread_create(&c[i], NULL, consumer, (void *)i);
    for (long i = 0; i < PRODUCERS; i++) pthread_create(&p[i], NULL, producer, (void *)i);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++) pthread_join(c[i], NULL);
    long produced = 0, consumed = 0, produced_sum = 0, consumed_sum = 0;
    uint64_t produce_hold = 0, consume_hold = 0, cond_wait = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        produced += items;
        produced_sum += pstats[i].sum;
        produce_hold += pstats[i].hold;
        cond_wait += pstats[i].cond_wait;
    }
    for (int i = 0; i < CONSUMERS; i++) {
        consumed += (long)cstats[i].done;
        consumed_sum += cstats[i].sum;
        consume_hold += cstats[i].hold;
        cond_wait += cstats[i].cond_wait;
    }
    printf("produced=%ld consumed=%ld checksum_ok=%d\n", produced, consumed, produced_sum == consumed_sum);
    printf("produce_hold_ns=%llu consume_hold_ns=%llu cond_wait_ns=%llu\n", (unsigned long long)produce_hold,
           (unsigned long long)consume_hold, (unsigned long long)cond_wait);
    return produced == consumed && produced_sum == consumed_sum ? 0 : 1;
}
