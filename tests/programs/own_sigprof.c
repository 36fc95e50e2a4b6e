/* Installs its own SIGPROF handler and an ITIMER_PROF timer, burns 0.5 s of CPU and prints
 *   own=N foreign=M
 * own: signals from its setitimer (si_code SI_KERNEL); foreign: any other SIGPROF, e.g. from
 * a POSIX timer (SI_TIMER) that is not the program's.                                     */
#include "util.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t own, foreign;
volatile uint64_t sink;

static void on_prof(int sig, siginfo_t *info, void *uc) {
    (void)sig;
    (void)uc;
    if (info->si_code == SI_KERNEL)
        own++;
    else
        foreign++;
}

__attribute__((noipa)) void spin(uint64_t n) {
    uint64_t x = sink | 1;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    sink = x;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_prof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, NULL) != 0) return 2;
    struct itimerval it = {{0, 10000}, {0, 10000}};
    if (setitimer(ITIMER_PROF, &it, NULL) != 0) return 2;
    uint64_t end = thread_cpu_ns() + 500000000ull;
    while (thread_cpu_ns() < end) spin(20000);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    printf("own=%d foreign=%d\n", (int)own, (int)foreign);
    return 0;
}
