"""Three exception types raised at known counts from known functions, each caught at once:
raise_value 60000 ValueError, raise_key 30000 KeyError, raise_decode 10000
json.decoder.JSONDecodeError (by json.loads, inside decode_bad). Prints the counts."""
import json
import os
import sys
import time

COUNTS = {"ValueError": 60000, "KeyError": 30000, "JSONDecodeError": 10000}


def raise_value(i):
    raise ValueError(i)


def raise_key(d, i):
    return d[i]


def decode_bad(text):
    return json.loads(text)


def wait_for_profiler():
    """The library registers its sys.monitoring tool shortly after the interpreter starts
    (a task run under the GIL); raises before that are not counted. With
    RAISES_WAIT_FOR_PROFILER=1 the count starts once the tool is there (3.12+)."""
    monitoring = getattr(sys, "monitoring", None)
    if not os.environ.get("RAISES_WAIT_FOR_PROFILER") or monitoring is None:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(monitoring.get_tool(i) == "ddprof" for i in range(6)):
            return
        time.sleep(0.001)


def main():
    wait_for_profiler()
    for i in range(COUNTS["ValueError"]):
        try:
            raise_value(i)
        except ValueError:
            pass
        if i % 2 == 0:
            try:
                raise_key({}, i)
            except KeyError:
                pass
        if i % 6 == 0:
            try:
                decode_bad("{bad")
            except json.JSONDecodeError:
                pass
    print(" ".join(f"{k}={v}" for k, v in COUNTS.items()))


main()
