"""Wall time of a named threading.Thread: napper-7 spends SECONDS in time.sleep inside nap();
meanwhile the main thread runs Python code, then joins it. Prints the time nap() measured
(nap_ns=).
"""
import sys
import threading
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
measured = {}


def nap():
    t0 = time.monotonic_ns()
    time.sleep(SECONDS)
    measured["nap_ns"] = time.monotonic_ns() - t0


def main():
    napper = threading.Thread(target=nap, name="napper-7")
    napper.start()
    deadline = time.monotonic() + SECONDS * 0.7
    n = 0
    while time.monotonic() < deadline:
        n += 1
    napper.join()
    print(f"nap_ns={measured['nap_ns']}")


main()
