/* Two leaf functions burn CPU in a 3:1 ratio for about 2 s of CPU. The program measures the
 * thread CPU time of every call itself and prints the truth:
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
    const uint64_t chunk = 300000;
    uint64_t a = 0, b = 0;
    while (a + b < 2000000000ull) {
        uint64_t t0 = thread_cpu_ns();
        burn_a(3 * chunk);
        uint64_t t1 = thread_cpu_ns();
        burn_b(chunk);
        uint64_t t2 = thread_cpu_ns();
        a += t1 - t0;
        b += t2 - t1;
    }
    printf("burn_a_ns=%llu burn_b_ns=%llu process_cpu_ns=%llu\n", (unsigned long long)a,
           (unsigned long long)b, (unsigned long long)process_cpu_ns());
    return 0;
}
