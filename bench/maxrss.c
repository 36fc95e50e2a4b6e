/* maxrss PROGRAM [ARGS...]: runs PROGRAM and prints its peak RSS on stderr, last:
 *   maxrss_kib=N
 * then exits with PROGRAM's status. The harness needs it because a child's ru_maxrss also
 * counts what the child was before exec: a fork of the (Python) harness, ~14 MiB; a fork of
 * this small program weighs ~1 MiB, under any program measured. MAXRSS_LD_PRELOAD, when set,
 * becomes PROGRAM's LD_PRELOAD (this program itself runs without the library). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: maxrss PROGRAM [ARGS...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) return 127;
    if (pid == 0) {
        const char *preload = getenv("MAXRSS_LD_PRELOAD");
        if (preload) {
            setenv("LD_PRELOAD", preload, 1);
            unsetenv("MAXRSS_LD_PRELOAD");
        }
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return 127;
    fprintf(stderr, "maxrss_kib=%ld\n", ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
