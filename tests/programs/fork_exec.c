/* Burns 0.3 s of CPU in burn_before_exec, then replaces itself (execvp, same pid) with
 * argv[1] argv[2]... The library must write this image's profile before the exec, and the
 * new image, which inherits LD_PRELOAD, profiles itself. With --no-preload first, the new
 * image runs without the library (LD_PRELOAD removed).  Prints pid=P first.              */
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile uint64_t sink;

__attribute__((noipa)) void burn_before_exec(void) {
    uint64_t x = sink | 1, end = thread_cpu_ns() + 300 * 1000 * 1000ull;
    while (thread_cpu_ns() < end)
        for (int i = 0; i < 10000; i++) x = x * 6364136223846793005ull + 1;
    sink = x;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--no-preload") == 0) {
        unsetenv("LD_PRELOAD");
        argv++;
        argc--;
    }
    if (argc < 2) return 2;
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);
    burn_before_exec();
    execvp(argv[1], argv + 1);
    perror("execvp");
    return 127;
}
