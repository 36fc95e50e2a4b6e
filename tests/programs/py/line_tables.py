"""Dumps code objects' line tables with the line CPython itself gives for every
instruction offset (PyCode_Addr2Line, what frame.f_lineno and tracebacks use), so the
profiler's decoders can be checked against the interpreter for each version.

One line per code object: `code <first line> <table hex> <line at offset 0>,<at 2>,…`
"""
import ctypes
import importlib
import types

addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int

MODULES = ["json.decoder", "argparse", "email.message", "asyncio.base_events", "dataclasses", "typing", "textwrap"]
LIMIT = 1500


def codes(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from codes(const)


count = 0
for name in MODULES:
    path = importlib.import_module(name).__file__
    with open(path, encoding="utf-8") as f:
        top = compile(f.read(), path, "exec")
    for code in codes(top):
        table = code.co_linetable if hasattr(code, "co_linetable") else code.co_lnotab
        lines = [addr2line(code, offset) for offset in range(0, len(code.co_code), 2)]
        print(f"code {code.co_firstlineno} {table.hex() or '-'} {','.join(map(str, lines)) or '-'}")
        count += 1
        if count >= LIMIT:
            raise SystemExit(0)
