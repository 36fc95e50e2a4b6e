/* The library blocks SIGPROF around fork; it must give the program its own signal mask
 * back on both sides. The main thread blocks SIGPROF (as a program that handles signals in
 * a dedicated thread would), forks, and each side checks the mask; then it unblocks SIGPROF,
 * forks again, and checks that it stayed unblocked.
 * Prints:  blocked_parent=0|1 blocked_child=0|1 unblocked_parent=0|1 unblocked_child=0|1 */
#include "util.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static int sigprof_blocked(void) {
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, SIGPROF) == 1;
}

/* Forks; the child exits with 1 when SIGPROF is blocked in it. Returns that, or -1. */
static int child_blocked(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(sigprof_blocked() ? 1 : 0);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

int main(void) {
    sigset_t prof;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &prof, NULL);
    int in_child = child_blocked();
    printf("blocked_parent=%d blocked_child=%d\n", sigprof_blocked(), in_child);
    pthread_sigmask(SIG_UNBLOCK, &prof, NULL);
    in_child = child_blocked();
    printf("unblocked_parent=%d unblocked_child=%d\n", !sigprof_blocked(), in_child == 0);
    return 0;
}
