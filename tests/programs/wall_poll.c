/* A thread blocked in one 3-second poll() with no events: counts how often poll returned
 * EINTR (it resumes with the time left). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include "util.h"

static int eintr;

__attribute__((noinline)) void wait_for_nothing(void) {
    int fds[2];
    if (pipe(fds) != 0) return;
    struct pollfd p = { .fd = fds[0], .events = POLLIN };
    uint64_t deadline = mono_ns() + 3000000000ull;
    for (;;) {
        uint64_t now = mono_ns();
        if (now >= deadline) break;
        int rc = poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
        if (rc < 0 && errno == EINTR) { eintr++; continue; }
        if (rc == 0) break;
    }
}

static void *poller(void *arg) { (void)arg; wait_for_nothing(); return NULL; }

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, poller, NULL);
    pthread_join(t, NULL);
    printf("eintr=%d\n", eintr);
    return 0;
}
