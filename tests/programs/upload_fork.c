/* Forks once; parent and child each burn CPU for argv[1] seconds and print their pid, so
 * both upload profiles of their own. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include "util.h"

static void burn(double seconds) {
    volatile unsigned long long x = 1;
    uint64_t end = mono_ns() + (uint64_t)(seconds * 1e9);
    while (mono_ns() < end)
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005ull + 1;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    burn(seconds);
    if (child == 0) {
        printf("child_pid=%d\n", (int)getpid());
        return 0;
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("parent_pid=%d child_status=%d\n", (int)getpid(), status);
    return 0;
}
