/* Children that share the parent's memory and run no atfork handlers: posix_spawn,
 * system(), popen() and vfork()+exec. A second thread burns CPU and allocates throughout,
 * so samples and hooks are live while the children exist. Afterwards the main thread burns
 * 0.3 s in burn_after_spawns: the profiler must still be working.
 * Prints:  posix_spawn=CODE system=CODE popen_out=TEXT popen_close=CODE vfork_exec=CODE  */
#include "util.h"
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;
static volatile int stop;
static volatile uint64_t sink;

__attribute__((noipa)) static void burn_ns(uint64_t ns) {
    uint64_t x = sink | 1, end = thread_cpu_ns() + ns;
    while (thread_cpu_ns() < end)
        for (int i = 0; i < 10000; i++) x = x * 6364136223846793005ull + 1;
    sink = x;
}

__attribute__((noipa)) void burn_after_spawns(void) {
    burn_ns(300 * 1000 * 1000);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame on the stack */
}

static void *background(void *arg) {
    (void)arg;
    while (!stop) {
        burn_ns(2 * 1000 * 1000);
        free(malloc(1 << 14));
    }
    return NULL;
}

static int code_of(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

int main(void) {
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, background, NULL);

    pid_t pid;
    char *spawn_argv[] = {"sh", "-c", "exit 7", NULL};
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, spawn_argv, environ);
    int status = 0;
    if (rc == 0) waitpid(pid, &status, 0);
    printf("posix_spawn=%d\n", rc == 0 ? code_of(status) : -rc);

    printf("system=%d\n", code_of(system("exit 3")));

    FILE *p = popen("echo hello-from-popen", "r");
    char line[128] = "";
    if (p && !fgets(line, sizeof line, p)) line[0] = 0;
    line[strcspn(line, "\n")] = 0;
    int closed = p ? pclose(p) : -1;
    printf("popen_out=%s popen_close=%d\n", line, code_of(closed));
    fflush(stdout);

    pid = vfork();
    if (pid == 0) {
        char *argv[] = {"sh", "-c", "exit 5", NULL};
        execve("/bin/sh", argv, environ);
        _exit(127);
    }
    status = 0;
    waitpid(pid, &status, 0);
    printf("vfork_exec=%d\n", code_of(status));
    fflush(stdout);

    burn_after_spawns();
    stop = 1;
    pthread_join(t, NULL);
    return 0;
}
