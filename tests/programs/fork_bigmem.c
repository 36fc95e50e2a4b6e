/* A process with argv[1] MiB resident (default 2048; every page touched) forks argv[2]
 * times (default 50) while a second thread burns CPU, so CPU-timer signals keep flying.
 * Each child checks a byte of the big block and leaves with _exit(0).
 * Prints:  forks=N failed=F fork_ns_max=M elapsed_ns=E                                  */
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

static volatile int stop;
static volatile uint64_t sink;

static void *burner(void *arg) {
    (void)arg;
    uint64_t x = 1;
    while (!stop)
        for (int i = 0; i < 100000; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    sink = x;
    return NULL;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 2048;
    int forks = argc > 2 ? atoi(argv[2]) : 50;
    size_t size = mib << 20;
    unsigned char *big = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    madvise(big, size, MADV_NOHUGEPAGE); /* 4 KiB pages: the most page-table work for fork */
    for (size_t off = 0; off < size; off += 4096) big[off] = (unsigned char)(off >> 12);
    pthread_t t;
    pthread_create(&t, NULL, burner, NULL);
    int failed = 0;
    uint64_t max_fork = 0, started = mono_ns();
    fflush(stdout);
    for (int i = 0; i < forks; i++) {
        uint64_t before = mono_ns();
        pid_t pid = fork();
        if (pid == 0) _exit(big[size - 4096] == (unsigned char)((size - 4096) >> 12) ? 0 : 3);
        uint64_t took = mono_ns() - before;
        if (took > max_fork) max_fork = took;
        if (pid < 0) {
            perror("fork");
            failed++;
            continue;
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    uint64_t elapsed = mono_ns() - started;
    stop = 1;
    pthread_join(t, NULL);
    printf("forks=%d failed=%d fork_ns_max=%llu elapsed_ns=%llu\n", forks, failed,
           (unsigned long long)max_fork, (unsigned long long)elapsed);
    return failed ? 1 : 0;
}
