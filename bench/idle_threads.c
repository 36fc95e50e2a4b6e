/* idle_threads N SECS: starts N threads that block forever, then measures the CPU time
 * (user + system, all threads: getrusage RUSAGE_SELF) the process uses during SECS of idling.
 * Prints the CPU seconds used in that window. */
#include "common.h"
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;

static void *idle(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m);
    for (;;) pthread_cond_wait(&c, &m);
    return NULL;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    int n = (int)arg_d(argc, argv, 1, 500);
    double secs = arg_d(argc, argv, 2, 5);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, idle, NULL) != 0) { perror("pthread_create"); return 1; }
    }
    usleep(200 * 1000);
    double c0 = cpu_s(), w0 = now_s();
    usleep((useconds_t)(secs * 1e6));
    double c1 = cpu_s(), w1 = now_s();
    printf("value=%.6g\nwall=%.6g\n", c1 - c0, w1 - w0);
    fflush(stdout);
    _exit(0); /* the threads hold the mutex; skip exit handlers of this program only */
}
