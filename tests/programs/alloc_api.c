/* Exercises every malloc-family entry point and its edge cases; prints one line per check
 * and exits non-zero when one fails, so it can run with and without the library. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(name, cond) do { int ok_ = (cond); printf("%s=%s\n", name, ok_ ? "ok" : "FAIL"); if (!ok_) failures++; } while (0)

/* With the argument "portable", checks whose outcome is glibc's own behaviour (pvalloc,
 * errno of a failed realloc) are skipped, so the run can be compared under jemalloc. */
int main(int argc, char **argv) {
    int portable = argc > 1 && strcmp(argv[1], "portable") == 0;
    /* realloc growth chain keeps contents */
    char *p = malloc(16);
    for (int i = 0; i < 16; i++) p[i] = (char)i;
    for (size_t n = 32; n <= (8u << 20); n *= 2) {
        p = realloc(p, n);
        if (!p) break;
        p[n - 1] = 7;
    }
    int intact = p != NULL;
    for (int i = 0; p && i < 16; i++) intact &= p[i] == (char)i;
    CHECK("realloc_chain", intact);
    free(p);

    void *q = NULL;
    int rc = posix_memalign(&q, 4096, 1000);
    CHECK("posix_memalign", rc == 0 && ((uintptr_t)q % 4096) == 0);
    free(q);
    CHECK("posix_memalign_einval", posix_memalign(&q, 3, 10) == EINVAL);
    void *a = aligned_alloc(256, 1024);
    CHECK("aligned_alloc", a && ((uintptr_t)a % 256) == 0);
    free(a);
    void *m = memalign(64, 100);
    CHECK("memalign", m && ((uintptr_t)m % 64) == 0);
    free(m);
    void *v = valloc(10);
    CHECK("valloc", v && ((uintptr_t)v % 4096) == 0);
    free(v);
    if (!portable) {
        void *pv = pvalloc(10);
        CHECK("pvalloc", pv && ((uintptr_t)pv % 4096) == 0 && malloc_usable_size(pv) >= 4096);
        free(pv);
    }

    unsigned char *z = calloc(1000, 1000);
    int zero = z != NULL;
    for (int i = 0; z && i < 1000000; i++) zero &= z[i] == 0;
    CHECK("calloc_zeroed", zero);
    free(z);

    free(NULL);
    CHECK("free_null", 1);
    void *r = malloc(10);
    r = realloc(r, 0); /* glibc frees and returns NULL */
    CHECK("realloc_zero", r == NULL);
    free(r);
    void *rn = realloc(NULL, 100);
    CHECK("realloc_null", rn != NULL && malloc_usable_size(rn) >= 100);
    free(rn);

    errno = 0;
    void *huge = malloc(SIZE_MAX / 2);
    CHECK("malloc_huge_fails", huge == NULL && errno == ENOMEM);
    errno = 0;
    void *hc = calloc(SIZE_MAX / 4, 8);
    CHECK("calloc_overflow_fails", hc == NULL && errno == ENOMEM);
    errno = 0;
    void *ra = reallocarray(NULL, SIZE_MAX / 2, 4);
    CHECK("reallocarray_overflow_fails", ra == NULL && errno == ENOMEM);
    errno = 0;
    void *rh = malloc(16);
    void *rh2 = realloc(rh, SIZE_MAX / 2);
    CHECK("realloc_huge_fails_keeps_block", rh2 == NULL && (portable || errno == ENOMEM));
    free(rh);
    printf("failures=%d\n", failures);
    return failures ? 1 : 0;
}
