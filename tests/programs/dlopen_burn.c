/* Loads the plugin given as argv[1] after start-up (so after the profiler armed its timers)
 * and burns 1.5 s of CPU inside it. Prints:  burn_ns=N                                    */
#include "util.h"
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    void (*burn)(uint64_t) = (void (*)(uint64_t))dlsym(h, "plugin_burn_ns");
    if (!burn) return 2;
    uint64_t t0 = thread_cpu_ns();
    burn(1500000000ull);
    printf("burn_ns=%llu\n", (unsigned long long)(thread_cpu_ns() - t0));
    return 0;
}
