/* Ways out of a busy multi-threaded process. Three threads burn CPU forever; then, by
 * argv[1]:
 *   thread-exit    a fourth thread burns 0.2 s in burn_then_exit and calls exit(5)
 *   segv           a fourth thread burns 0.2 s and dereferences NULL (default action)
 *   abort          a fourth thread burns 0.2 s and calls abort()
 *   segv-handler   as segv, with a SIGSEGV handler that calls _exit(4)
 * The main thread waits in pthread_join. Prints pid=P first.                         */
#include "util.h"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;
static const char *mode;

__attribute__((noipa)) static void burn_ms(uint64_t ms) {
    uint64_t x = sink | 1, end = thread_cpu_ns() + ms * 1000000ull;
    while (thread_cpu_ns() < end)
        for (int i = 0; i < 10000; i++) x = x * 6364136223846793005ull + 1;
    sink = x;
}

static void *spinner(void *arg) {
    (void)arg;
    for (;;) {
        burn_ms(10);
        free(malloc(4096));
    }
    return NULL;
}

static void on_segv(int sig) {
    (void)sig;
    _exit(4);
}

__attribute__((noipa)) void burn_then_exit(void) {
    burn_ms(200);
    if (strcmp(mode, "thread-exit") == 0) exit(5);
    if (strcmp(mode, "abort") == 0) abort();
    if (strcmp(mode, "segv") == 0 || strcmp(mode, "segv-handler") == 0) {
        volatile int *null = (volatile int *)(uintptr_t)(sink & 0);
        *null = 1;
    }
}

static void *ender(void *arg) {
    (void)arg;
    burn_then_exit();
    return NULL;
}

int main(int argc, char **argv) {
    mode = argc > 1 ? argv[1] : "thread-exit";
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);
    if (strcmp(mode, "segv-handler") == 0) signal(SIGSEGV, on_segv);
    pthread_t t[4];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, spinner, NULL);
    pthread_create(&t[3], NULL, ender, NULL);
    pthread_join(t[3], NULL);
    fprintf(stderr, "unexpected: the ending thread returned\n");
    return 1;
}
