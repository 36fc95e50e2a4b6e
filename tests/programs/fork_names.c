/* Thread names. The main thread renames itself "main-renamed" and burns 0.2 s; thread
 * "early-exit" burns 0.2 s and exits at once (long before the only export, at exit); thread
 * "long-lived" burns 0.2 s and waits until main is done; thread "late-name" burns 0.15 s
 * under its default name, renames itself and burns 0.15 s more, then exits.
 * Prints:  thread name=N tid=T   for each.                                               */
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static volatile uint64_t sink;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int main_done;

__attribute__((noipa)) static void burn_ms(uint64_t ms) {
    uint64_t x = sink | 1, end = thread_cpu_ns() + ms * 1000000ull;
    while (thread_cpu_ns() < end)
        for (int i = 0; i < 10000; i++) x = x * 6364136223846793005ull + 1;
    sink = x;
}

static void report(const char *name) {
    printf("thread name=%s tid=%ld\n", name, kernel_tid());
    fflush(stdout);
}

static void *early_exit(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "early-exit");
    report("early-exit");
    burn_ms(200);
    return NULL;
}

static void *long_lived(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "long-lived");
    report("long-lived");
    burn_ms(200);
    pthread_mutex_lock(&mu);
    while (!main_done) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *late_name(void *arg) {
    (void)arg;
    burn_ms(150);
    pthread_setname_np(pthread_self(), "late-name");
    report("late-name");
    burn_ms(150);
    return NULL;
}

int main(void) {
    pthread_setname_np(pthread_self(), "main-renamed");
    report("main-renamed");
    pthread_t a, b, c;
    pthread_create(&a, NULL, early_exit, NULL);
    pthread_join(a, NULL);
    pthread_create(&b, NULL, long_lived, NULL);
    pthread_create(&c, NULL, late_name, NULL);
    burn_ms(200);
    pthread_join(c, NULL);
    pthread_mutex_lock(&mu);
    main_done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(b, NULL);
    return 0;
}
