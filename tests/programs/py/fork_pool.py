"""os.fork children and a multiprocessing fork-context Pool while another thread keeps
allocating. Usage: fork_pool.py [forks] [workers]. Prints pid=P, then
`fork_child pid=C status=S` per os.fork child and `pool_worker pid=W` per pool worker."""
import multiprocessing
import os
import sys
import threading


def churn(stop):
    keep = []
    while not stop.is_set():
        keep.append(bytearray(4096))
        keep.append({"k": list(range(32))})
        if len(keep) > 512:
            keep.clear()


def child_work(n):
    total = 0
    for i in range(n):
        total += i * i
    junk = [bytes(1000) for _ in range(200)]
    return total + len(junk)


def pool_task(n):
    child_work(n)
    return os.getpid()


def main():
    forks = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(f"pid={os.getpid()}", flush=True)
    stop = threading.Event()
    churner = threading.Thread(target=churn, args=(stop,), name="churner")
    churner.start()

    children = []
    for i in range(forks):
        pid = os.fork()
        if pid == 0:
            child_work(50000)
            if i % 2:
                # Leaves through Py_Finalize and exit(): the atexit path.
                sys.stdout.flush()
                raise SystemExit(0)
            os._exit(0)  # what multiprocessing workers do
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        print(f"fork_child pid={pid} status={status}", flush=True)

    pool = multiprocessing.get_context("fork").Pool(workers)
    worker_pids = [p.pid for p in pool._pool]
    results = pool.map(pool_task, [20000] * (8 * workers), chunksize=1)
    pool.close()  # not terminate(): workers leave through os._exit, not SIGTERM
    pool.join()
    for pid in worker_pids:
        print(f"pool_worker pid={pid}", flush=True)
    print(f"pool_results={len(results)}", flush=True)

    stop.set()
    churner.join()


if __name__ == "__main__":
    main()
