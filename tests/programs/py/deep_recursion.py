"""A recursion DEPTH calls deep (recurse(DEPTH) ... recurse(0)) that burns CPU at the bottom
for SECONDS: every sample of the burn has DEPTH + 1 recurse frames under <module>.
"""
import sys
import time

DEPTH = int(sys.argv[1]) if len(sys.argv) > 1 else 300
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
sys.setrecursionlimit(DEPTH + 1000)


def recurse(n):
    if n == 0:
        deadline = time.thread_time() + SECONDS
        s = 0
        while time.thread_time() < deadline:
            for i in range(2000):
                s += i * i
        return s
    return recurse(n - 1)


print(f"depth={DEPTH} total={recurse(DEPTH)}")
