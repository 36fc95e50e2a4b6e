"""A Python program whose own memory use is flat after its first second, giving every profile
type something to record: 4 threads loop over Python CPU work, allocations (a ring of 2,000
live objects per thread turning over), a contended threading.Lock, a raised and caught
ValueError, and a 1 ms sleep. The main thread prints its resident set (VmRSS, KiB) every
250 ms, so a test can tell whether the profiler's memory grows from one export period to the
next.

    rss_steady.py SECS      prints `t_ms=<ms> rss_kib=<KiB>` lines, then `done=1`
"""
import sys
import threading
import time

LIVE = 2000
shared_lock = threading.Lock()


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def spin(n):
    x = 1
    for i in range(n):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


def parse(text):
    try:
        return int(text)
    except ValueError:
        return spin(500)  # handling takes some CPU: 3.8-3.11 see exceptions in CPU samples


def loop(end, seed):
    live = [None] * LIVE
    nxt = 0
    x = seed
    while time.monotonic() < end:
        x = spin(3000) ^ x
        for i in range(40):
            live[nxt] = [x + i] * (1 + (x + i) % 64)
            nxt = (nxt + 1) % LIVE
        with shared_lock:
            spin(1500)
        parse("not a number")
        time.sleep(0.001)


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 12
    start = time.monotonic()
    end = start + secs
    threads = [threading.Thread(target=loop, args=(end, s), name=f"worker-{s}") for s in range(4)]
    for t in threads:
        t.start()
    while time.monotonic() < end:
        time.sleep(0.25)
        print(f"t_ms={int((time.monotonic() - start) * 1000)} rss_kib={rss_kib()}", flush=True)
    for t in threads:
        t.join()
    print("done=1", flush=True)


main()
