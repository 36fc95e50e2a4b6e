/* Burns CPU for argv[1] seconds, prints a deterministic result and its pid, and exits with
 * status argv[2]: the upload tests check that neither changes under the profiler, whatever
 * the Agent does. */
#include <stdio.h>
#include <stdlib.h>
#include "util.h"

static unsigned long long burn(double seconds) {
    unsigned long long x = 1, rounds = 0;
    uint64_t end = mono_ns() + (uint64_t)(seconds * 1e9);
    while (mono_ns() < end) {
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        rounds++;
    }
    return rounds ? 42 : 0; /* deterministic whatever the speed */
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    int status = argc > 2 ? atoi(argv[2]) : 0;
    uint64_t t0 = mono_ns();
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);
    unsigned long long r = burn(seconds);
    printf("result=%llu\n", r);
    printf("elapsed_ms=%llu\n", (unsigned long long)((mono_ns() - t0) / 1000000));
    return status;
}
