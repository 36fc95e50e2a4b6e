// 8 threads, each for argv[2] seconds: malloc/free of assorted sizes, dlopen/dlclose of the
// plugin at argv[1] (calling into it), C++ throw/catch through a few frames, and fprintf to
// /dev/null. Prints one line per thread, then  ok iterations=N.
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdexcept>
#include <string>

static const char *plugin_path;
static double seconds;
static FILE *devnull;

static double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((noipa)) static int thrower(int depth, int v) {
    if (depth == 0) throw std::runtime_error("stress " + std::to_string(v));
    return thrower(depth - 1, v) + 1;
}

__attribute__((noipa)) static int catcher(int v) {
    try {
        return thrower(3, v);
    } catch (const std::exception &e) {
        return (int)strlen(e.what());
    }
}

struct Result {
    long iterations;
    long checksum;
};

static void *worker(void *arg) {
    Result *r = static_cast<Result *>(arg);
    uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
    double end = now() + seconds;
    while (now() < end) {
        void *blocks[16];
        for (int i = 0; i < 16; i++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t size = 1 + rng % 65536;
            blocks[i] = malloc(size);
            memset(blocks[i], i, size < 64 ? size : 64);
        }
        for (int i = 15; i >= 0; i--) free(blocks[i]);

        void *h = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            abort();
        }
        int (*work)(int) = (int (*)(int))dlsym(h, "plugin_work");
        if (!work) abort();
        r->checksum += work(2000);
        dlclose(h);

        r->checksum += catcher((int)r->iterations);

        for (int i = 0; i < 4; i++) fprintf(devnull, "iteration %ld value %d %f\n", r->iterations, i, i * 0.5);
        r->iterations++;
    }
    return nullptr;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    plugin_path = argv[1];
    seconds = atof(argv[2]);
    devnull = fopen("/dev/null", "w");
    if (!devnull) return 2;
    pthread_t t[8];
    Result results[8] = {};
    for (int i = 0; i < 8; i++) pthread_create(&t[i], nullptr, worker, &results[i]);
    long total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], nullptr);
        printf("thread %d iterations=%ld checksum=%ld\n", i, results[i].iterations, results[i].checksum);
        total += results[i].iterations;
    }
    fclose(devnull);
    printf("ok iterations=%ld\n", total);
    return 0;
}
