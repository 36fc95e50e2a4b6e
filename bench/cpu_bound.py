"""CPU-bound Python workload: a fixed amount of pure-Python work in a few functions.
Prints the time of the work loop (the harness also times the whole process)."""
import sys
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def sieve(limit):
    flags = bytearray([1]) * (limit + 1)
    flags[0:2] = b"\0\0"
    for i in range(2, int(limit ** 0.5) + 1):
        if flags[i]:
            flags[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    return sum(flags)


def string_work(n):
    parts = [str(i * 7) for i in range(n)]
    return len(",".join(parts).split(","))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    t0 = time.perf_counter()
    total = 0
    for _ in range(rounds):
        total += fib(22)
        total += sieve(200_000)
        total += string_work(50_000)
    t1 = time.perf_counter()
    print(f"value={t1 - t0:.6f}")
    print(f"check={total}")


if __name__ == "__main__":
    main()
