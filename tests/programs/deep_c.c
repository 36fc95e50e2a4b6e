/* A recursion 1000 calls deep (descend(1000) ... descend(0)) that burns CPU at the bottom for
 * about 1.5 s: every sample of the burn has 1001 descend frames under main.
 *   depth=1000                                                                            */
#include "util.h"
#include <stdio.h>

#define DEPTH 1000
volatile uint64_t sink;

__attribute__((noipa)) void burn(void) {
    uint64_t x = sink | 1;
    uint64_t t0 = thread_cpu_ns();
    while (thread_cpu_ns() - t0 < 1500000000ull) {
        for (int i = 0; i < 100000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    sink = x;
}

/* noipa and the work after the call: a real call frame per level, no tail call. */
__attribute__((noipa)) int descend(int n) {
    if (n == 0) {
        burn();
        return 0;
    }
    return descend(n - 1) + (int)(sink & 1);
}

int main(void) {
    printf("depth=%d result=%d\n", DEPTH, descend(DEPTH));
    return 0;
}
