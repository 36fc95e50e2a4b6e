"""Verification: the stack Python reports for this thread (sys._current_frames()) at a
controlled moment, while the thread then spins on that very line.

The call chain mixes what the reader must handle: methods (qualified names), a closure,
a generator, a C function calling back into Python (sorted with a key), a lambda, and a
recursion `DEPTH` deep. Prints one `frame=<name>|<file>|<line>` line per frame, root
first, then `tid=`.
"""
import sys
import threading
import time

DEPTH = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 1.5


def code_name(code):
    return getattr(code, "co_qualname", code.co_name)


def own_view():
    """This thread's frames as Python sees them, root first, without this function."""
    frame = sys._current_frames()[threading.get_ident()].f_back
    out = []
    while frame is not None:
        out.append((code_name(frame.f_code), frame.f_code.co_filename, frame.f_lineno))
        frame = frame.f_back
    return out[::-1]


def bottom():
    deadline, seen = time.thread_time() + SECONDS, None
    while time.thread_time() < deadline or seen is None: seen = seen or own_view()  # noqa: E701
    return seen


class Tree:
    def descend(self, depth):
        if depth == 0:
            box = []
            sorted([0], key=lambda _: box.append(bottom()))
            return box[0]
        return self.descend(depth - 1)


def walk(depth):
    yield Tree().descend(depth)


def outer():
    def inner(depth):
        return next(walk(depth))
    return inner(DEPTH)


seen = outer()
for name, filename, line in seen:
    print(f"frame={name}|{filename}|{line}")
print(f"tid={threading.get_native_id()}")
