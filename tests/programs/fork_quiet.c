/* Quiet children of a fork burst: fork_quiet N MODE.
 * The main thread first sleeps and burns a little (so the profiler has watched and sampled
 * it: its children inherit that state), then forks N children one after the other, as fast
 * as it can. Each child records nothing the profiler samples:
 *   wait    the child calls _exit(0) at once; the parent waits for it and prints
 *           child pid=P fork_ns=F end_ns=E (wall clock, ns since the epoch) per child;
 *   orphan  the child sleeps 300 ms, then _exit(0); the parent does not wait and exits first,
 *           so the children outlive it (and are re-parented). Prints child pid=P per child.
 * Prints parent pid=P first. */
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static volatile uint64_t sink;

static void burn_ms(uint64_t ms) {
    uint64_t x = sink | 1, end = thread_cpu_ns() + ms * 1000000ull;
    while (thread_cpu_ns() < end)
        for (int i = 0; i < 10000; i++) x = x * 6364136223846793005ull + 1;
    sink = x;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20;
    int orphan = argc > 2 && strcmp(argv[2], "orphan") == 0;
    printf("parent pid=%d\n", (int)getpid());
    fflush(stdout);
    usleep(50 * 1000);
    burn_ms(50);
    for (int i = 0; i < n; i++) {
        uint64_t fork_ns = clock_ns(CLOCK_REALTIME);
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {
            if (orphan) usleep(300 * 1000);
            _exit(0);
        }
        if (orphan) {
            printf("child pid=%d\n", (int)pid);
            continue;
        }
        int status = 0;
        waitpid(pid, &status, 0);
        uint64_t end_ns = clock_ns(CLOCK_REALTIME);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "child %d failed\n", (int)pid); return 1; }
        printf("child pid=%d fork_ns=%llu end_ns=%llu\n", (int)pid, (unsigned long long)fork_ns, (unsigned long long)end_ns);
    }
    fflush(stdout);
    return 0;
}
