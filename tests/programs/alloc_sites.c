/* Three allocation sites with known totals: many 64-byte blocks, few 256 KiB blocks (both
 * freed at once), and 48 MiB kept alive until exit. Prints the truth it produced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *volatile sink;
static void *kept[48];

__attribute__((noinline)) void small_site(long n) {
    for (long i = 0; i < n; i++) { sink = malloc(64); free(sink); }
}
__attribute__((noinline)) void big_site(long n) {
    for (long i = 0; i < n; i++) { char *p = malloc(256 * 1024); p[0] = 1; sink = p; free(p); }
}
__attribute__((noinline)) void keep_site(void) {
    for (int i = 0; i < 48; i++) { kept[i] = malloc(1 << 20); memset(kept[i], 1, 1 << 20); }
}

int main(void) {
    long n_small = 8000000, n_big = 4000;
    small_site(n_small);
    big_site(n_big);
    keep_site();
    printf("small_bytes=%ld small_count=%ld\n", n_small * 64, n_small);
    printf("big_bytes=%ld big_count=%ld\n", n_big * 256L * 1024, n_big);
    printf("keep_bytes=%ld keep_count=48\n", 48L << 20);
    return 0;
}
