/* fork_bench SECS: fork a child that exits at once and wait for it, for SECS.
 * Prints forks per second (value=) and the number of forks (forks=). */
#include "common.h"
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    double secs = arg_d(argc, argv, 1, 0.5);
    long n = 0;
    double t0 = now_s(), end = t0 + secs, t1;
    do {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) _exit(0);
        int status;
        waitpid(pid, &status, 0);
        n++;
    } while ((t1 = now_s()) < end);
    printf("value=%.6g\nforks=%ld\n", (double)n / (t1 - t0), n);
    return 0;
}
