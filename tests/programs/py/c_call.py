"""A thread stuck in one long C call that holds the GIL: sum(range(N)).

Prints the thread's native id, the CPU time the call took and the line of the call.
"""
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10**9


def stuck():
    t0 = time.thread_time_ns()
    line = sys._getframe().f_lineno + 1
    total = sum(range(N))
    spent = time.thread_time_ns() - t0
    print(f"tid={threading.get_native_id()} cpu_ns={spent} call_line={line} total={total}")


t = threading.Thread(target=stuck, name="stuck-in-c")
t.start()
t.join()
