"""The image that replaces the shell (`sh -c 'exec python3 fork_exec_target.py'`): burns
0.4 s of CPU in exec_target_work and prints its pid."""
import os
import time


def exec_target_work(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for i in range(2000):
            x += i * i
    return x


print(f"python_pid={os.getpid()}", flush=True)
exec_target_work(0.4)
