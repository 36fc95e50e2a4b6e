/* The floor of interposition: malloc and free that only jump to the next definition. Preloaded
 * by `make bench` as a comparison for the malloc/free rows (what any malloc-hooking profiler
 * pays before doing anything). Not part of the library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);

__attribute__((constructor)) static void resolve(void) {
    next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
}

void *malloc(size_t size) { return next_malloc(size); }
void free(void *ptr) { next_free(ptr); }
