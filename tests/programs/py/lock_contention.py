"""Python lock contention with known waits, next to threads that only wait for work.

Four `contend` threads take `cache_lock` in turn and hold it 2 ms (sleeping, GIL released);
each measures the time its `cache_lock.acquire()` calls blocked. Meanwhile threads named
idle-* sit for the whole run in queue.Queue.get, queue.SimpleQueue.get, Event.wait,
Condition.wait, Thread.join and Future.result: waits for work or an event, not contention.

Prints waited_ns= (the contenders' total), lock_line= (where cache_lock is created) and
acquire_line= (where it is waited for).
"""
import concurrent.futures
import queue
import sys
import threading
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
LOCK_LINE = sys._getframe().f_lineno + 1
cache_lock = threading.Lock()
ACQUIRE_LINE = 0
waited = []


def contend():
    global ACQUIRE_LINE
    total = 0
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        t0 = time.perf_counter_ns()
        ACQUIRE_LINE = sys._getframe().f_lineno + 1
        cache_lock.acquire()
        total += time.perf_counter_ns() - t0
        time.sleep(0.002)
        cache_lock.release()
    waited.append(total)


work_queue = queue.Queue()
simple_queue = queue.SimpleQueue()
event = threading.Event()
condition = threading.Condition()
future = concurrent.futures.Future()
done = threading.Event()


def wait_on_condition():
    with condition:
        condition.wait()


idle = [
    threading.Thread(target=work_queue.get, name="idle-queue"),
    threading.Thread(target=simple_queue.get, name="idle-simplequeue"),
    threading.Thread(target=event.wait, name="idle-event"),
    threading.Thread(target=wait_on_condition, name="idle-condition"),
    threading.Thread(target=future.result, name="idle-future"),
]
sleeper = threading.Thread(target=done.wait, name="idle-sleeper")
idle.append(threading.Thread(target=sleeper.join, name="idle-join"))
sleeper.start()
for t in idle:
    t.start()

contenders = [threading.Thread(target=contend, name=f"contend-{i}") for i in range(4)]
for t in contenders:
    t.start()
for t in contenders:
    t.join()

work_queue.put(1)
simple_queue.put(1)
event.set()
with condition:
    condition.notify_all()
future.set_result(1)
done.set()
for t in idle + [sleeper]:
    t.join()
print(f"waited_ns={sum(waited)} lock_line={LOCK_LINE} acquire_line={ACQUIRE_LINE}")
