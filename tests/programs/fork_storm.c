/* Fork storm: 4 threads hammer malloc/free and a shared mutex while the main thread forks
 * argv[1] times (default 500). Each child allocates, locks a fresh mutex and leaves with
 * _exit(0). Prints one line per child:  child pid=P status=S ns=(fork to reaped)  and at the end
 *   forks=N failed=F elapsed_ns=T                                                     */
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop;
static volatile unsigned long counter;

static void *hammer(void *arg) {
    /* Low priority, so that on a small machine the forking thread and the children are not
     * starved by four busy threads; they still hammer whenever a CPU is free. */
    setpriority(PRIO_PROCESS, (id_t)kernel_tid(), 15);
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    void *keep[64] = {0};
    while (!stop) {
        for (int i = 0; i < 64; i++) {
            seed = seed * 1103515245u + 12345u;
            free(keep[i]);
            keep[i] = malloc(16 + (seed >> 16) % 8192);
            if (keep[i]) memset(keep[i], (int)i, 16);
        }
        pthread_mutex_lock(&shared_lock);
        counter++;
        pthread_mutex_unlock(&shared_lock);
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
    return NULL;
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 500;
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)(i + 1));
    int failed = 0;
    uint64_t started = mono_ns();
    fflush(stdout);
    for (int i = 0; i < forks; i++) {
        uint64_t fork_started = mono_ns();
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            failed++;
            continue;
        }
        if (pid == 0) {
            /* A few KiB: allocation sampling (mean 512 KiB) rarely picks one, so most
             * children export an empty profile; a sampled child symbolizes, which costs a
             * fresh process ~0.2 s. */
            char *blocks[16];
            for (int b = 0; b < 16; b++) {
                blocks[b] = malloc(64u << (b % 6));
                if (!blocks[b]) _exit(2);
                memset(blocks[b], b, 64);
            }
            pthread_mutex_t fresh;
            pthread_mutex_init(&fresh, NULL);
            pthread_mutex_lock(&fresh);
            pthread_mutex_unlock(&fresh);
            pthread_mutex_destroy(&fresh);
            for (int b = 0; b < 16; b++) free(blocks[b]);
            _exit(0);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) {
            perror("waitpid");
            failed++;
            continue;
        }
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok) failed++;
        printf("child pid=%d status=%d ns=%llu\n", (int)pid, status,
               (unsigned long long)(mono_ns() - fork_started));
    }
    uint64_t elapsed = mono_ns() - started;
    stop = 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("forks=%d failed=%d elapsed_ns=%llu\n", forks, failed, (unsigned long long)elapsed);
    return failed ? 1 : 0;
}
