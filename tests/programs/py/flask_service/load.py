"""Load for app.py: THREADS client threads, each requesting /hash, /parse, /sqlite, /lock in
turn for SECONDS seconds. Prints requests= (completed) and errors=."""
import sys
import threading
import time
import urllib.request

PORT, SECONDS, THREADS = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
ROUTES = ["/hash", "/parse", "/sqlite", "/lock"]
done = []
errors = []


def client():
    n = 0
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        for route in ROUTES:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{route}", timeout=10) as r:
                    r.read()
                n += 1
            except Exception as e:  # counted, not fatal: the test checks there are few
                errors.append(repr(e))
    done.append(n)


threads = [threading.Thread(target=client) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"requests={sum(done)} errors={len(errors)}")
