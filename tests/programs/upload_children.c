/* Forks argv[1] children one after the other; each burns a little CPU and exits with
 * exit(0) (so each writes or uploads its final profile on the way out). Prints the median
 * time from fork to the end of wait, so a test can see what the profiler's exit costs a
 * short-lived child. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include "util.h"

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    uint64_t *took = calloc((size_t)n, sizeof *took);
    int failed = 0;
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        uint64_t t0 = mono_ns();
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {
            volatile unsigned long long x = 1;
            for (int k = 0; k < 100000; k++) x = x * 6364136223846793005ull + 1;
            exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        took[i] = mono_ns() - t0;
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    qsort(took, (size_t)n, sizeof *took, cmp);
    printf("children=%d failed=%d median_child_us=%llu\n", n, failed, (unsigned long long)(took[n / 2] / 1000));
    return 0;
}
