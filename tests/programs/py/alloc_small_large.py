"""Allocation ground truth for Python code: small_tuples() builds lists of small tuples (each
tuple is a pymalloc block, which malloc never sees); big_bytearrays() allocates a few large
bytearrays (malloc blocks). Everything is kept alive until the end, so no free list hands a
block back for reuse, and every object is allocated exactly once, in the function named.

Prints small_bytes= and large_bytes=: what each function allocated, from sys.getsizeof
(which includes the garbage collector's header and a list's item array).
"""
import sys

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
PER_ROUND = 20000
BIG = 1 << 20


def small_tuples(src, indices, keep_all):
    allocated = 0
    for _ in range(ROUNDS):
        keep = [None] * PER_ROUND
        for i, a in zip(indices, src):
            keep[i] = (a, a)
        keep_all.append(keep)
        allocated += sys.getsizeof(keep) + PER_ROUND * sys.getsizeof(keep[0])
    return allocated


def big_bytearrays(count, keep_all):
    allocated = 0
    for _ in range(count):
        block = bytearray(BIG)
        keep_all.append(block)
        allocated += sys.getsizeof(block)
    return allocated


def main():
    src = [object() for _ in range(PER_ROUND)]
    indices = list(range(PER_ROUND))
    keep_all = []
    small = small_tuples(src, indices, keep_all)
    large = big_bytearrays(ROUNDS * 4, keep_all)
    print(f"small_bytes={small} large_bytes={large}")


main()
