"""A loop of Python calls, raising or not: bench/raise_loop.py raise|plain N.
raise: each call raises ValueError and its caller catches it (the exception-heavy case);
plain: the same calls return normally (a program raising nothing). Prints value= calls/s of
the loop alone."""
import sys
import time


def fails(i):
    raise ValueError(i)


def works(i):
    return i


def main():
    mode, n = sys.argv[1], int(sys.argv[2])
    t0 = time.perf_counter()
    if mode == "raise":
        for i in range(n):
            try:
                fails(i)
            except ValueError:
                pass
    else:
        for i in range(n):
            try:
                works(i)
            except ValueError:
                pass
    print(f"value={n / (time.perf_counter() - t0):.0f}")


main()
