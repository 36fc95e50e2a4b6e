"""subprocess starts its children with vfork (CPython 3.10+), and the vfork child resets
every signal handler (SIGPROF included) to SIG_DFL before exec, in memory it shares with
the parent. The parent's profiling must not notice: CPU time spent after the subprocesses,
in after_subprocess, is sampled just like the time before, in before_subprocess."""
import os
import subprocess
import sys
import time


def spin(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for i in range(2000):
            x += i * i
    return x


def before_subprocess():
    return spin(0.4)


def after_subprocess():
    return spin(0.4)


def main():
    print(f"pid={os.getpid()}", flush=True)
    before_subprocess()
    for _ in range(3):
        subprocess.run(["/bin/true"], check=True)
    out = subprocess.run(["/bin/sh", "-c", "echo hello-from-sh"], capture_output=True, text=True, check=True)
    print(f"subprocess_out={out.stdout.strip()}", flush=True)
    if hasattr(os, "posix_spawn"):
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 6"], dict(os.environ))
        _, status = os.waitpid(pid, 0)
        print(f"posix_spawn={os.waitstatus_to_exitcode(status)}", flush=True)
    after_subprocess()


if __name__ == "__main__":
    sys.exit(main())
