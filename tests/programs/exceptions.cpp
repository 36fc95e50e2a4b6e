// Two exception types thrown at known counts from known functions, each caught at once:
//   throw_runtime: RUNTIME_THROWS std::runtime_error; throw_parse: PARSE_THROWS app::ParseError
// Prints runtime_throws=… parse_throws=… (the truth the profile is checked against).
#include <cstdio>
#include <stdexcept>

namespace app {
struct ParseError {
    int position;
};
}  // namespace app

volatile long caught;

__attribute__((noinline)) void throw_runtime(long i) {
    throw std::runtime_error("boom");
}

__attribute__((noinline)) void throw_parse(long i) {
    throw app::ParseError{static_cast<int>(i)};
}

int main() {
    const long runtime_throws = 200000, parse_throws = 100000;
    for (long i = 0; i < runtime_throws; i++) {
        try {
            throw_runtime(i);
        } catch (const std::runtime_error &) {
            caught = caught + 1;
        }
        if (i % 2 == 0) {
            try {
                throw_parse(i);
            } catch (const app::ParseError &) {
                caught = caught + 1;
            }
        }
    }
    std::printf("runtime_throws=%ld parse_throws=%ld caught=%ld\n", runtime_throws, parse_throws, (long)caught);
    return 0;
}
