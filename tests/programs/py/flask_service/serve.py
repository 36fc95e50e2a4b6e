"""Runs app.py under gunicorn (2 workers x 4 threads, gthread) as a child of this process (so
it inherits LD_PRELOAD), loads it with load.py started *without* the library, then stops
gunicorn with SIGTERM (workers exit normally and write their profiles).

usage: serve.py SECONDS   (run with the venv's python that has flask and gunicorn)
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SECONDS = sys.argv[1] if len(sys.argv) > 1 else "5"
here = os.path.dirname(os.path.abspath(__file__))

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

server = subprocess.Popen(
    [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4", "-k", "gthread",
     "-b", f"127.0.0.1:{port}", "--chdir", here, "--log-level", "warning",
     "--graceful-timeout", "15", "app:app"])
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/parse", timeout=2).read()
        break
    except Exception:
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            sys.exit("gunicorn did not start")
        time.sleep(0.1)

bare = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
load = subprocess.run([sys.executable, os.path.join(here, "load.py"), str(port), SECONDS, "4"],
                      env=bare, capture_output=True, text=True)
print(load.stdout.strip())
server.send_signal(signal.SIGTERM)
print(f"server_status={server.wait(timeout=60)}")
