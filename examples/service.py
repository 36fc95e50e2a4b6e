"""A small pretend service for the libddprof demo.

Each kind of behaviour a profiler should see lives in its own function, so the
profiles are easy to read:

  compute_checksums      CPU hot spot (pure Python arithmetic)
  wait_for_backend       sleeping / waiting on I/O (wall time, no CPU)
  build_response_cache   allocations of lists and bytearrays, part kept alive
  update_shared_counter  two threads contending one threading.Lock
  run_forked_worker      a child made with os.fork that does its own work

Runs for about 10 seconds (override with the first argument, in seconds):

  DD_PROFILING_OUTPUT_PPROF=/tmp/svc/service scripts/ddprof-run python3 examples/service.py
"""

import os
import select
import sys
import threading
import time

RUN_SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0

# Kept alive on purpose, so the live-heap profile has something to show.
response_cache = []
counter_lock = threading.Lock()
shared_counter = 0


def compute_checksums(rounds):
    """CPU hot spot: a toy checksum over a range of integers."""
    total = 0
    for i in range(rounds):
        total = (total * 31 + i * i) % 1_000_003
    return total


def wait_for_backend(seconds):
    """Off-CPU time: a sleep, then a wait on a pipe nobody writes to (like slow I/O)."""
    time.sleep(seconds / 2)
    read_end, write_end = os.pipe()
    try:
        select.select([read_end], [], [], seconds / 2)
    finally:
        os.close(read_end)
        os.close(write_end)


def build_response_cache(items):
    """Allocations: short-lived lists and bytearrays, and a few kept in the cache."""
    rows = [list(range(64)) for _ in range(items)]
    blobs = [bytearray(4096) for _ in range(items)]
    response_cache.append(bytearray(256 * 1024))
    if len(response_cache) > 40:
        del response_cache[:20]
    return len(rows) + len(blobs)


def update_shared_counter(deadline):
    """Lock contention: hold the lock while working, so the other thread waits."""
    global shared_counter
    while time.monotonic() < deadline:
        with counter_lock:
            compute_under_lock(20_000)
            write_while_holding_lock()
            shared_counter += 1
        time.sleep(0.001)


def write_while_holding_lock():
    """I/O under the lock (a classic mistake): the GIL is released, the lock is not, so the
    other thread really waits for the lock."""
    time.sleep(0.002)


def compute_under_lock(rounds):
    """Work done while holding counter_lock (the lock's hold time)."""
    x = 0
    for i in range(rounds):
        x ^= i
    return x


def forked_worker_main(seconds):
    """What the forked child does: CPU work and allocations, then a fast exit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        compute_checksums(50_000)
        build_response_cache(50)


def run_forked_worker(seconds):
    """Fork a worker process, as pre-fork servers and multiprocessing do."""
    pid = os.fork()
    if pid == 0:
        try:
            forked_worker_main(seconds)
        finally:
            # Like multiprocessing workers: leave without running the parent's cleanup.
            os._exit(0)
    return pid


def handle_requests(deadline):
    """The main loop: one "request" is CPU work, a backend wait and allocations."""
    served = 0
    while time.monotonic() < deadline:
        compute_checksums(200_000)
        wait_for_backend(0.05)
        build_response_cache(200)
        served += 1
    return served


def main():
    start = time.monotonic()
    deadline = start + RUN_SECONDS

    workers = [
        threading.Thread(target=update_shared_counter, args=(deadline,), name=f"counter-{n}")
        for n in range(2)
    ]
    for t in workers:
        t.start()

    child = run_forked_worker(RUN_SECONDS / 2)
    served = handle_requests(deadline)

    for t in workers:
        t.join()
    _, status = os.waitpid(child, 0)
    elapsed = time.monotonic() - start
    print(
        f"service: pid {os.getpid()}, served {served} requests in {elapsed:.1f} s, "
        f"counter {shared_counter}, worker {child} exit status {os.waitstatus_to_exitcode(status)}"
    )


if __name__ == "__main__":
    main()
