/* A small shared library loaded with dlopen by dlopen_burn.c and stress.cpp. */
#include <stdint.h>
#include <time.h>

volatile uint64_t plugin_sink;

__attribute__((noipa)) void plugin_spin(uint64_t n) {
    uint64_t x = plugin_sink | 1;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 7;
        x ^= x >> 11;
        x ^= x << 19;
    }
    plugin_sink = x;
}

/* Burns `ns` nanoseconds of the calling thread's CPU time. */
void plugin_burn_ns(uint64_t ns) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    uint64_t end = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec + ns;
    for (;;) {
        plugin_spin(20000);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        if ((uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec >= end) break;
    }
}

/* A little work for the stress test: returns something that depends on n. */
int plugin_work(int n) {
    plugin_spin((uint64_t)n);
    return (int)(plugin_sink & 0xff);
}
