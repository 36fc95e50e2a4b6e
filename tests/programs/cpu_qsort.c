/* CPU spent inside libc's qsort: the comparator is ours, the sorting loop is libc's static
 * msort_with_tmp, which only the symbol table of libc's separate debug file names. ~0.5 s. */
#include "util.h"
#include <stdio.h>
#include <stdlib.h>

#define N 4096

__attribute__((noinline)) static int compare(const void *a, const void *b) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

int main(void) {
    static unsigned values[N];
    unsigned seed = 12345;
    uint64_t end = mono_ns() + 500000000ull;
    long rounds = 0;
    while (mono_ns() < end) {
        for (int i = 0; i < N; i++) values[i] = seed = seed * 1103515245u + 12345u;
        qsort(values, N, sizeof values[0], compare);
        rounds++;
    }
    printf("rounds=%ld\n", rounds);
    return 0;
}
