"""The program's last function allocates for a few milliseconds, then the script ends: the
interpreter finalizes at once, freeing the code objects that name those samples. The library
drains its samples before finalization (an atexit callback), so final_burst() is still named.

Prints burst_bytes=: what final_burst() allocated, from sys.getsizeof.
"""
import sys
import time

BLOCK = 256 * 1024


def warm_up():
    # Lets the library find the interpreter and register its callbacks.
    time.sleep(0.3)


def final_burst(count):
    keep = []
    total = 0
    for _ in range(count):
        block = bytearray(BLOCK)
        keep.append(block)
        total += sys.getsizeof(block)
    return keep, total


warm_up()
kept, burst = final_burst(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
print(f"burst_bytes={burst}", flush=True)
