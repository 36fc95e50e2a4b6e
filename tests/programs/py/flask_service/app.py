"""A small Flask service with four kinds of work, one route each:

/hash    slow_hash: a loop of sha256 over 32 bytes (Python loop + OpenSSL)
/parse   parse_or_default: int() over strings, a third of which raise ValueError
/sqlite  run_query: an aggregate over an in-memory table (time in sqlite's C code)
/lock    update_cache: holds cache_lock 2 ms (sleeping), contended by the other threads

Each worker measures the thread CPU time spent in slow_hash, parse_or_default and run_query's
query (C code they call included) and prints it when it exits: cpu_ns pid=… slow_hash=…
"""
import atexit
import hashlib
import os
import sqlite3
import threading
import time

from flask import Flask

app = Flask(__name__)
cache_lock = threading.Lock()
local = threading.local()
cache = {}
spent = {"slow_hash": 0, "parse_or_default": 0, "run_query": 0}
spent_lock = threading.Lock()


def measured(name, t0):
    ns = time.thread_time_ns() - t0
    with spent_lock:
        spent[name] += ns


@atexit.register
def report():
    fields = " ".join(f"{k}={v}" for k, v in spent.items())
    os.write(1, f"cpu_ns pid={os.getpid()} {fields}\n".encode())  # one write: workers share stdout


def slow_hash(rounds):
    t0 = time.thread_time_ns()
    h = b"0" * 32
    for _ in range(rounds):
        h = hashlib.sha256(h).digest()
    measured("slow_hash", t0)
    return h.hex()


def parse_or_default(values):
    t0 = time.thread_time_ns()
    total = 0
    for v in values:
        try:
            total += int(v)
        except ValueError:
            total -= 1
    measured("parse_or_default", t0)
    return total


def connection():
    if not hasattr(local, "db"):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE t (a INTEGER, b INTEGER)")
        db.executemany("INSERT INTO t VALUES (?, ?)", ((i, i % 97) for i in range(20000)))
        local.db = db
    return local.db


def run_query():
    db = connection()
    t0 = time.thread_time_ns()
    row = db.execute("SELECT sum(a * b), count(*) FROM t WHERE b > 3").fetchone()
    measured("run_query", t0)
    return row


def update_cache(key):
    with cache_lock:
        time.sleep(0.002)
        cache[key] = cache.get(key, 0) + 1
        return cache[key]


VALUES = [str(i) if i % 3 else f"x{i}" for i in range(3000)]


@app.route("/hash")
def hash_route():
    return slow_hash(3000)


@app.route("/parse")
def parse_route():
    return str(parse_or_default(VALUES))


@app.route("/sqlite")
def sqlite_route():
    return str(run_query())


@app.route("/lock")
def lock_route():
    return str(update_cache("k"))
