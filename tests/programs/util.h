/* Small helpers shared by the test fixtures (header-only, static functions). */
#ifndef DDPROF_TEST_UTIL_H
#define DDPROF_TEST_UTIL_H
#define _GNU_SOURCE 1
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static inline uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static inline uint64_t thread_cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
static inline uint64_t process_cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }
static inline uint64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static inline long kernel_tid(void) { return (long)syscall(SYS_gettid); }

#endif
