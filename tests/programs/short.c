/* Burns argv[1] milliseconds of CPU, prints  pid=P cpu_ns=N  and leaves the way argv[2]
 * says (return | exit | _exit | _Exit, default return) with exit code argv[3] (default 0). */
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile uint64_t sink;

__attribute__((noipa)) void spin(uint64_t n) {
    uint64_t x = sink | 1;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    sink = x;
}

int main(int argc, char **argv) {
    uint64_t ms = argc > 1 ? strtoull(argv[1], NULL, 10) : 50;
    const char *mode = argc > 2 ? argv[2] : "return";
    int code = argc > 3 ? atoi(argv[3]) : 0;
    uint64_t end = thread_cpu_ns() + ms * 1000000ull;
    while (thread_cpu_ns() < end) spin(20000);
    printf("pid=%d cpu_ns=%llu\n", (int)getpid(), (unsigned long long)process_cpu_ns());
    fflush(stdout);
    if (strcmp(mode, "exit") == 0) exit(code);
    if (strcmp(mode, "_exit") == 0) _exit(code);
    if (strcmp(mode, "_Exit") == 0) _Exit(code);
    return code;
}
