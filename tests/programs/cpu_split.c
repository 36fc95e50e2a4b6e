/* Two leaf functions burn CPU in a 3:1 ratio, in long blocks, for about 2 s of CPU. The
 * program measures the thread CPU time of every call itself and prints the truth:
 *   burn_a_ns=... burn_b_ns=... process_cpu_ns=...                                       */
#include "util.h"
#include <stdio.h>

volatile uint64_t sink;

/* noipa: no inlining, no cloning, no identical-code folding, so both names survive -O2. */
__attribute__((noipa)) void burn_a(uint64_t n) {
    uint64_t x = sink | 1;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    sink = x;
}

__attribute__((noipa)) void burn_b(uint64_t n) {
    uint64_t x = sink | 3;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 5;
        x ^= x >> 9;
        x ^= x << 23;
    }
    sink = x;
}

int main(void) {
    /* Long blocks (about 150 ms then 50 ms), not a fine interleaving: a sampler ticking every
     * 10 ms of CPU then misattributes at most about one period per block boundary, whereas
     * short interleaved calls would make every sample a coin toss (with ~200 samples, a
     * standard error of 3 points, as large as the tolerance). */
    uint64_t t0 = thread_cpu_ns();
    burn_b(1000000);
    uint64_t calib = thread_cpu_ns() - t0;
    uint64_t chunk = calib ? 1000000ull * 50000000ull / calib : 50000000ull;
    uint64_t a = 0, b = calib;
    while (a + b < 2000000000ull) {
        uint64_t t1 = thread_cpu_ns();
        burn_a(3 * chunk);
        uint64_t t2 = thread_cpu_ns();
        burn_b(chunk);
        uint64_t t3 = thread_cpu_ns();
        a += t2 - t1;
        b += t3 - t2;
    }
    printf("burn_a_ns=%llu burn_b_ns=%llu process_cpu_ns=%llu\n", (unsigned long long)a,
           (unsigned long long)b, (unsigned long long)process_cpu_ns());
    return 0;
}
