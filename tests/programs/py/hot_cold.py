"""CPU split: Work.hot runs three times as often as Work.cold (same body). Call sizes are
random so that the calls cannot fall in step with the sampling timer.

Prints the CPU time this thread spent in each (hot_ns=, cold_ns=) and the first and last
line of each function, so the test can check the profile's split, names, files and lines.
"""
import inspect
import random
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 2.5


class Work:
    def hot(self, n):
        s = 0
        for i in range(n):
            s += i * i
        return s

    def cold(self, n):
        s = 0
        for i in range(n):
            s += i * i
        return s


def main():
    work = Work()
    spent = {"hot": 0, "cold": 0}
    deadline = time.thread_time() + SECONDS
    while time.thread_time() < deadline:
        for name in ("hot", "hot", "hot", "cold"):
            t0 = time.thread_time_ns()
            getattr(work, name)(random.randint(2000, 40000))
            spent[name] += time.thread_time_ns() - t0
    print(f"hot_ns={spent['hot']} cold_ns={spent['cold']}")
    for f in (Work.hot, Work.cold):
        lines, first = inspect.getsourcelines(f)
        print(f"function={f.__name__} first_line={first} last_line={first + len(lines) - 1}")


main()
