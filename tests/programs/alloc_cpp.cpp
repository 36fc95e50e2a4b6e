// C++ new/delete reach the profiler through malloc: a site using new[] with a known total.
#include <cstdio>
#include <vector>

char *volatile sink;

__attribute__((noinline)) void new_site(long n) {
    for (long i = 0; i < n; i++) {
        char *p = new char[1000];
        sink = p;
        delete[] p;
    }
}

int main() {
    long n = 1000000;
    new_site(n);
    std::printf("new_bytes=%ld\n", n * 1000);
    return 0;
}
