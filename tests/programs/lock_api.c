/* Return values and errno of the lock functions in their corner cases: timeouts, invalid
 * clocks and timeouts, error-checking, recursive and robust mutexes, rwlock self-deadlock,
 * semaphore EAGAIN/ETIMEDOUT/EINTR, cancellation inside sem_wait, condition wait timeouts.
 * Prints one line per call; the output must be the same with and without the library. */
#include "util.h"
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static sem_t started, release_holder, s0;

#define SHOW(name, expr)                                                                      \
    do {                                                                                      \
        errno = 0;                                                                            \
        int rc_ = (expr);                                                                     \
        int errno_ = errno;                                                                   \
        printf("%-34s rc=%d (%s) errno=%d\n", name, rc_, rc_ > 0 ? strerror(rc_) : "", errno_); \
    } while (0)

enum { MUTEX, WRITER, READER };

static void *holder(void *arg) {
    int kind = (int)(long)arg;
    if (kind == MUTEX) pthread_mutex_lock(&m);
    else if (kind == WRITER) pthread_rwlock_wrlock(&rw);
    else pthread_rwlock_rdlock(&rw);
    sem_post(&started);
    while (sem_wait(&release_holder) != 0) {}
    if (kind == MUTEX) pthread_mutex_unlock(&m);
    else pthread_rwlock_unlock(&rw);
    return NULL;
}

static pthread_t hold(int kind) {
    pthread_t t;
    pthread_create(&t, NULL, holder, (void *)(long)kind);
    while (sem_wait(&started) != 0) {}
    return t;
}

static void unhold(pthread_t t) {
    sem_post(&release_holder);
    pthread_join(t, NULL);
}

static struct timespec in_ms(clockid_t clock, long ms) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static struct timespec past(void) { return (struct timespec){.tv_sec = 1, .tv_nsec = 0}; }
static struct timespec bad_nsec(void) {
    struct timespec ts = in_ms(CLOCK_REALTIME, 20);
    ts.tv_nsec = 1000000000;
    return ts;
}

static void mutexes(void) {
    struct timespec ts;
    pthread_t t = hold(MUTEX);
    ts = in_ms(CLOCK_REALTIME, 20);
    SHOW("mutex_timedlock held", pthread_mutex_timedlock(&m, &ts));
    ts = past();
    SHOW("mutex_timedlock held past", pthread_mutex_timedlock(&m, &ts));
    ts = bad_nsec();
    SHOW("mutex_timedlock held bad nsec", pthread_mutex_timedlock(&m, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("mutex_clocklock held", pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("mutex_clocklock held bad clock", pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &ts));
    SHOW("mutex_trylock held", pthread_mutex_trylock(&m));
    unhold(t);

    ts = bad_nsec();
    SHOW("mutex_timedlock free bad nsec", pthread_mutex_timedlock(&m, &ts));
    SHOW("mutex_unlock", pthread_mutex_unlock(&m));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("mutex_clocklock free bad clock", pthread_mutex_clocklock(&m, CLOCK_THREAD_CPUTIME_ID, &ts));
    SHOW("mutex_trylock free", pthread_mutex_trylock(&m));
    SHOW("mutex_unlock", pthread_mutex_unlock(&m));

    pthread_mutexattr_t attr;
    pthread_mutex_t em, rm;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&em, &attr);
    SHOW("errorcheck lock", pthread_mutex_lock(&em));
    SHOW("errorcheck relock", pthread_mutex_lock(&em));
    SHOW("errorcheck trylock", pthread_mutex_trylock(&em));
    ts = in_ms(CLOCK_REALTIME, 20);
    SHOW("errorcheck timedlock", pthread_mutex_timedlock(&em, &ts));
    SHOW("errorcheck unlock", pthread_mutex_unlock(&em));
    SHOW("errorcheck unlock again", pthread_mutex_unlock(&em));
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&rm, &attr);
    SHOW("recursive lock", pthread_mutex_lock(&rm));
    SHOW("recursive lock 2", pthread_mutex_lock(&rm));
    SHOW("recursive trylock", pthread_mutex_trylock(&rm));
    SHOW("recursive unlock", pthread_mutex_unlock(&rm));
    SHOW("recursive unlock 2", pthread_mutex_unlock(&rm));
    SHOW("recursive unlock 3", pthread_mutex_unlock(&rm));
    SHOW("recursive unlock 4", pthread_mutex_unlock(&rm));
    pthread_mutexattr_destroy(&attr);
}

static pthread_mutex_t robust;

static void *die_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL;
}

static void robust_mutexes(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    for (int round = 0; round < 2; round++) {
        pthread_mutex_init(&robust, &attr);
        pthread_t t;
        pthread_create(&t, NULL, die_holding, NULL);
        pthread_join(t, NULL);
        if (round == 0) SHOW("robust lock owner died", pthread_mutex_lock(&robust));
        else SHOW("robust trylock owner died", pthread_mutex_trylock(&robust));
        SHOW("robust consistent", pthread_mutex_consistent(&robust));
        SHOW("robust unlock", pthread_mutex_unlock(&robust));
        pthread_mutex_destroy(&robust);
    }
    pthread_mutexattr_destroy(&attr);
}

static void rwlocks(void) {
    struct timespec ts;
    pthread_t t = hold(WRITER);
    ts = in_ms(CLOCK_REALTIME, 20);
    SHOW("rwlock_timedrdlock held", pthread_rwlock_timedrdlock(&rw, &ts));
    ts = in_ms(CLOCK_REALTIME, 20);
    SHOW("rwlock_timedwrlock held", pthread_rwlock_timedwrlock(&rw, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("rwlock_clockrdlock held", pthread_rwlock_clockrdlock(&rw, CLOCK_MONOTONIC, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("rwlock_clockwrlock held", pthread_rwlock_clockwrlock(&rw, CLOCK_MONOTONIC, &ts));
    ts = bad_nsec();
    SHOW("rwlock_timedwrlock held bad nsec", pthread_rwlock_timedwrlock(&rw, &ts));
    SHOW("rwlock_tryrdlock held", pthread_rwlock_tryrdlock(&rw));
    SHOW("rwlock_trywrlock held", pthread_rwlock_trywrlock(&rw));
    unhold(t);

    t = hold(READER);
    SHOW("rwlock_tryrdlock shared", pthread_rwlock_tryrdlock(&rw));
    SHOW("rwlock_unlock", pthread_rwlock_unlock(&rw));
    SHOW("rwlock_trywrlock shared", pthread_rwlock_trywrlock(&rw));
    ts = in_ms(CLOCK_REALTIME, 20);
    SHOW("rwlock_timedwrlock shared", pthread_rwlock_timedwrlock(&rw, &ts));
    unhold(t);

    ts = bad_nsec();
    SHOW("rwlock_timedrdlock free bad nsec", pthread_rwlock_timedrdlock(&rw, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("rwlock_clockwrlock free bad clock", pthread_rwlock_clockwrlock(&rw, CLOCK_PROCESS_CPUTIME_ID, &ts));
    SHOW("rwlock_wrlock", pthread_rwlock_wrlock(&rw));
    SHOW("rwlock_rdlock own write", pthread_rwlock_rdlock(&rw));
    SHOW("rwlock_wrlock own write", pthread_rwlock_wrlock(&rw));
    SHOW("rwlock_unlock", pthread_rwlock_unlock(&rw));
    SHOW("rwlock_rdlock", pthread_rwlock_rdlock(&rw));
    SHOW("rwlock_rdlock again", pthread_rwlock_rdlock(&rw));
    SHOW("rwlock_unlock", pthread_rwlock_unlock(&rw));
    SHOW("rwlock_unlock", pthread_rwlock_unlock(&rw));
}

static void *post_later(void *arg) {
    usleep(20000);
    sem_post((sem_t *)arg);
    return NULL;
}

static void *unlock_later(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m);
    sem_post(&started);
    usleep(20000);
    pthread_mutex_unlock(&m);
    return NULL;
}

static void on_usr1(int sig) { (void)sig; }

static void *signal_later(void *arg) {
    usleep(20000);
    pthread_kill(*(pthread_t *)arg, SIGUSR1);
    return NULL;
}

static void *cancelled_waiter(void *arg) {
    (void)arg;
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    while (sem_wait(&started) != 0) {} /* main has cancelled us */
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    sem_wait(&s0); /* s0 has a token: only the pending cancellation can stop us here */
    return (void *)1;
}

static void semaphores(void) {
    struct timespec ts;
    sem_init(&s0, 0, 0);
    SHOW("sem_trywait empty", sem_trywait(&s0));
    ts = in_ms(CLOCK_REALTIME, 20);
    SHOW("sem_timedwait empty", sem_timedwait(&s0, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("sem_clockwait empty", sem_clockwait(&s0, CLOCK_MONOTONIC, &ts));
    sem_post(&s0);
    ts = bad_nsec();
    SHOW("sem_timedwait bad nsec", sem_timedwait(&s0, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("sem_clockwait bad clock", sem_clockwait(&s0, CLOCK_PROCESS_CPUTIME_ID, &ts));
    int value = -1;
    sem_getvalue(&s0, &value);
    printf("sem value still %d\n", value);
    SHOW("sem_wait available", sem_wait(&s0));

    /* errno is left alone by a successful wait, even one that had to block. */
    pthread_t t;
    pthread_create(&t, NULL, post_later, &s0);
    errno = 4242;
    int rc = sem_wait(&s0);
    printf("sem_wait after block rc=%d errno=%d\n", rc, errno);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, unlock_later, NULL);
    while (sem_wait(&started) != 0) {}
    errno = 4343;
    rc = pthread_mutex_lock(&m);
    printf("mutex_lock after block rc=%d errno=%d\n", rc, errno);
    pthread_mutex_unlock(&m);
    pthread_join(t, NULL);

    /* A signal interrupts a blocked sem_wait (no SA_RESTART: EINTR). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t self = pthread_self();
    pthread_create(&t, NULL, signal_later, &self);
    SHOW("sem_wait interrupted", sem_wait(&s0));
    pthread_join(t, NULL);

    /* A pending cancellation acts in sem_wait even when the semaphore has a token. */
    sem_post(&s0);
    pthread_create(&t, NULL, cancelled_waiter, NULL);
    pthread_cancel(t);
    sem_post(&started);
    void *result = NULL;
    pthread_join(t, &result);
    printf("sem_wait with pending cancel: %s\n", result == PTHREAD_CANCELED ? "cancelled" : "returned");
    int left = -1;
    sem_getvalue(&s0, &left);
    printf("sem value after cancel %d\n", left);
}

static void conditions(void) {
    struct timespec ts;
    pthread_mutex_lock(&m);
    ts = bad_nsec();
    SHOW("cond_timedwait bad nsec", pthread_cond_timedwait(&cv, &m, &ts));
    ts = past();
    SHOW("cond_timedwait past", pthread_cond_timedwait(&cv, &m, &ts));
    ts = in_ms(CLOCK_REALTIME, 20);
    SHOW("cond_timedwait", pthread_cond_timedwait(&cv, &m, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("cond_clockwait", pthread_cond_clockwait(&cv, &m, CLOCK_MONOTONIC, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 20);
    SHOW("cond_clockwait bad clock", pthread_cond_clockwait(&cv, &m, CLOCK_PROCESS_CPUTIME_ID, &ts));
    SHOW("mutex_trylock own (normal)", pthread_mutex_trylock(&m));
    SHOW("mutex_unlock after waits", pthread_mutex_unlock(&m));
}

int main(void) {
    sem_init(&started, 0, 0);
    sem_init(&release_holder, 0, 0);
    mutexes();
    robust_mutexes();
    rwlocks();
    semaphores();
    conditions();
    printf("done\n");
    return 0;
}
