/* Threads and processes made with raw clone(), not pthread_create or fork:
 *  1. clone(CLONE_VM|CLONE_THREAD|...) thread that computes and exits with SYS_exit
 *     (it shares the creator's TLS, so it makes raw system calls only);
 *  2. clone(SIGCHLD) process (no atfork handlers run) that allocates, burns a little CPU
 *     and calls exit(7), then one that calls _exit(9);
 *  3. clone(CLONE_VM|CLONE_VFORK|SIGCHLD) child that execs /bin/true (what posix_spawn does).
 * Meanwhile the main thread keeps burning CPU, and at the end it burns 0.3 s more in
 * burn_after_clones to show the profiler still works. Prints one key=value line per check. */
#define _GNU_SOURCE 1
#include "util.h"
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/futex.h>

#define STACK_SIZE (256 * 1024)
static volatile uint64_t sink;
static volatile int thread_result;
static volatile int thread_done; /* cleared by the kernel (CLONE_CHILD_CLEARTID) */

__attribute__((noipa)) static void burn_ns(uint64_t ns) {
    uint64_t x = sink | 1, end = thread_cpu_ns() + ns;
    while (thread_cpu_ns() < end)
        for (int i = 0; i < 10000; i++) x = x * 6364136223846793005ull + 1;
    sink = x;
}

__attribute__((noipa)) void burn_after_clones(void) {
    burn_ns(300 * 1000 * 1000);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame on the stack */
}

static int raw_thread(void *arg) {
    (void)arg;
    uint64_t x = 1;
    for (long i = 0; i < 50 * 1000 * 1000; i++) x = x * 6364136223846793005ull + 1;
    thread_result = (int)(x & 0xff) | 0x100;
    syscall(SYS_exit, 0);
    return 0;
}

static int raw_process(void *arg) {
    int code = (int)(intptr_t)arg;
    char *p = malloc(1 << 16);
    if (!p) _exit(2);
    memset(p, 3, 1 << 16);
    free(p);
    burn_ns(20 * 1000 * 1000);
    if (code == 9) _exit(9);
    exit(code);
}

static int raw_vfork_exec(void *arg) {
    (void)arg;
    char *argv[] = {"true", NULL};
    execv("/bin/true", argv);
    _exit(127);
}

static void *new_stack(void) {
    void *s = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (s == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return (char *)s + STACK_SIZE;
}

static int wait_code(pid_t pid) {
    int status = 0;
    printf("child_pid=%d\n", (int)pid);
    if (pid < 0 || waitpid(pid, &status, __WALL) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

int main(void) {
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);
    /* 1: a raw thread in this process. */
    thread_done = 1;
    int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                CLONE_CHILD_CLEARTID;
    pid_t tid = clone(raw_thread, new_stack(), flags, NULL, NULL, NULL, (int *)&thread_done);
    if (tid < 0) {
        perror("clone thread");
        return 2;
    }
    burn_ns(50 * 1000 * 1000);
    while (thread_done) syscall(SYS_futex, &thread_done, FUTEX_WAIT, thread_done, NULL, NULL, 0);
    printf("raw_thread_ok=%d\n", (thread_result & 0x100) ? 1 : 0);
    fflush(stdout); /* the raw processes below would flush a copy of the buffer too */

    /* 2: raw processes; no atfork handler runs in them. */
    int code = wait_code(clone(raw_process, new_stack(), SIGCHLD, (void *)7));
    printf("raw_process_exit=%d\n", code);
    fflush(stdout);
    code = wait_code(clone(raw_process, new_stack(), SIGCHLD, (void *)9));
    printf("raw_process_underscore_exit=%d\n", code);
    fflush(stdout);

    /* 3: what posix_spawn does by hand. */
    code = wait_code(clone(raw_vfork_exec, new_stack(), CLONE_VM | CLONE_VFORK | SIGCHLD, NULL));
    printf("raw_vfork_exec=%d\n", code);

    fflush(stdout);
    burn_after_clones();
    return 0;
}
