/* A forked child spins until its parent kills it with SIGTERM (or SIGINT, SIGHUP: argv[1]
 * names the signal) after about 1 s; the parent prints how the child ended:
 *   child_pid=... signaled=1 signal=15 handler_ran=0
 * With argv[2] = "own", the child installs its own handler first (which exits 3): the
 * program's handler must run as installed:  signaled=0 exit_code=3 handler_ran=1.
 * The child also prints what sigaction reports as its SIGTERM disposition before (dfl=1). */
#include "util.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

volatile uint64_t sink;

static void own_handler(int sig) {
    (void)sig;
    _exit(3);
}

int main(int argc, char **argv) {
    int sig = SIGTERM;
    if (argc > 1 && strcmp(argv[1], "INT") == 0) sig = SIGINT;
    if (argc > 1 && strcmp(argv[1], "HUP") == 0) sig = SIGHUP;
    int own = argc > 2 && strcmp(argv[2], "own") == 0;
    int ready[2];
    if (pipe(ready) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction old;
        sigaction(sig, NULL, &old);
        printf("dfl=%d\n", old.sa_handler == SIG_DFL);
        fflush(stdout);
        if (own) signal(sig, own_handler);
        if (write(ready[1], "x", 1) != 1) _exit(1);
        uint64_t x = 1;
        for (;;) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            sink = x;
        }
    }
    char c;
    if (read(ready[0], &c, 1) != 1) return 1;
    /* Until the child has used 1 s of CPU (however busy the machine is). */
    clockid_t child_clock;
    if (clock_getcpuclockid(pid, &child_clock) != 0) return 1;
    uint64_t child_cpu = 0;
    while ((child_cpu = clock_ns(child_clock)) < 1000000000ull) usleep(10000);
    kill(pid, sig);
    int status;
    waitpid(pid, &status, 0);
    printf("child_cpu_ns=%llu child_pid=%d signaled=%d signal=%d exit_code=%d handler_ran=%d\n", (unsigned long long)child_cpu, (int)pid, WIFSIGNALED(status),
           WIFSIGNALED(status) ? WTERMSIG(status) : 0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           WIFEXITED(status) && WEXITSTATUS(status) == 3);
    return 0;
}
