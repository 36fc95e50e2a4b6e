"""Time spent handling three exception types, known: each handler burns CPU inside its
`except` block (in a function it calls, as real handlers do) for a set share of the run —
ValueError 50 %, KeyError 30 %, json.decoder.JSONDecodeError 20 % — and the program measures
the thread CPU time each took. Between handlers it burns CPU with no exception being handled.
The order of the handlers and the length of each burn are random (seeded): a fixed cycle whose
CPU length is a multiple of the 4 ms sampling period would lock the samples' phase to the loop
and give every sample the same few handlers.

usage: handles.py SECONDS. Prints ValueError=… KeyError=… JSONDecodeError=… (ns handling
each) and outside=… (ns not handling any).
"""
import json
import random
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
SHARES = [("ValueError", 5), ("KeyError", 3), ("JSONDecodeError", 2)]
ROUND = [kind for kind, n in SHARES for _ in range(n)]
rng = random.Random(20261205)
spent = {"ValueError": 0, "KeyError": 0, "JSONDecodeError": 0, "outside": 0}


def burn(ms):
    end = time.thread_time_ns() + int(ms * 1e6)
    x = 0
    while time.thread_time_ns() < end:
        x += 1
    return x


def recover(kind, ms):
    t0 = time.thread_time_ns()
    burn(ms)
    spent[kind] += time.thread_time_ns() - t0


def handle_value():
    try:
        int("not a number")
    except ValueError:
        recover("ValueError", rng.uniform(0.5, 1.5))


def handle_key():
    try:
        {}["missing"]
    except KeyError:
        recover("KeyError", rng.uniform(0.5, 1.5))


def handle_decode():
    try:
        json.loads("{")
    except json.JSONDecodeError:
        recover("JSONDecodeError", rng.uniform(0.5, 1.5))


HANDLERS = {"ValueError": handle_value, "KeyError": handle_key, "JSONDecodeError": handle_decode}


def main():
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        rng.shuffle(ROUND)
        for kind in ROUND:
            HANDLERS[kind]()
        t0 = time.thread_time_ns()
        burn(rng.uniform(1.0, 3.0))
        spent["outside"] += time.thread_time_ns() - t0
    print(" ".join(f"{k}={v}" for k, v in spent.items()))


main()
