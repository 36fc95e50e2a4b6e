#!/usr/bin/env python3
"""Checks that the crate's modules import one another in one direction only.

    scripts/check-layers.py [--list] [SRC_DIR]

Reads every `crate::…` and `super::…` path in src/ (use declarations and paths written in
code alike, comments and strings left out), maps each to the file of the module it names,
and fails (exit 1) when

  * two files reach each other through a chain of imports (an import circle), or
  * a file imports one of a higher layer than its own (LAYERS below: the architecture).

`--list` prints every file's imports. `make test` runs it, so a circle cannot come back.
"""
import os
import re
import sys

# The layers, top first. A file may import files of its own layer's lower neighbours only
# (any layer listed after its own); within one layer, the circle check alone applies.
# A prefix names a folder or a file under src/ (without .rs).
LAYERS = [
    ("entry", ["lib", "bin"]),
    ("hooks", ["hooks"]),
    ("life cycle", ["runtime", "profiler_threads", "termination"]),
    ("cold side: export", ["export"]),
    ("cold side: report", ["report"]),
    ("cold side: profile", ["profile"]),
    ("python: work under the GIL", ["python_gil"]),
    ("hot side: sample, python frames", ["sample", "python"]),
    ("process-wide state", ["thread", "own_heap", "real_alloc", "family", "fork_safe"]),
    ("hand-off", ["collect"]),
    ("life-cycle status", ["status"]),
    ("configuration", ["config"]),
    ("foundation", ["real", "real_lock", "tls_counter", "yield_lock", "log", "fast_map"]),
]

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{)?")
MACROS = {"log_error", "log_warn", "log_info", "log_debug"}


def strip_comments_and_strings(text):
    """Blanks out comments, string and char literals, keeping line numbers."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == '"' or text.startswith('r"', i) or text.startswith('r#"', i):
            if c == "r":
                hashes = text[i + 1:text.index('"', i)]
                end = '"' + hashes
                i = text.index('"', i) + 1
                j = text.find(end, i)
                j = n if j < 0 else j + len(end)
            else:
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                j += 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4] + "  "):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            i += len(m.group(0)) if m else 1
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(path, src):
    """src/a/b.rs and src/a/b/mod.rs -> ['a', 'b']; src/lib.rs -> []."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod" or rel == ["lib"]:
        rel = rel[:-1]
    return rel


def expand_group(text, start):
    """`crate::{a, b::{c, d}}` starting at the `{` -> ['a', 'b::c', 'b::d']."""
    depth, j = 0, start
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                break
        j += 1
    body = text[start + 1:j]
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    paths = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{.*\})?", item, re.S)
        if not m:
            continue
        head = m.group(1)
        if m.group(2):
            paths += [head + "::" + p for p in expand_group(m.group(2)[2:], 0)]
        else:
            paths.append(head)
    return paths


def resolve(segments, files):
    """The longest prefix of a module path that is a file: ['a', 'b', 'Item'] -> 'a/b'."""
    if segments and segments[0] in MACROS:
        return "log"
    for k in range(len(segments), 0, -1):
        key = "/".join(segments[:k])
        if key in files:
            return key
    return "lib"


def imports(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                files["/".join(module_of(path, src)) or "lib"] = path
    graph = {}
    for key, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = strip_comments_and_strings(f.read())
        # A file's unit tests (a trailing `#[cfg(test)] mod …`) are not part of the layering.
        test_mod = re.search(r"#\[cfg\(test\)\]\s*mod\s", text)
        if test_mod:
            text = text[:test_mod.start()]
        here = key.split("/") if key != "lib" else []
        targets = set()
        for m in PATH.finditer(text):
            # `super` is the parent of the file's module (for a/b.rs and a/b/mod.rs alike).
            base = [] if m.group(1) == "crate" else here[:-1]
            prefix = m.group(2)[2:]
            if m.group(3):
                tails = [(prefix + "::" if prefix else "") + t for t in expand_group(text, m.end() - 1)]
            elif prefix:
                tails = [prefix]
            else:
                continue
            for tail in tails:
                segs = list(base)
                for seg in tail.split("::"):
                    if seg == "super":
                        segs = segs[:-1]
                    else:
                        segs.append(seg)
                target = resolve(segs, files)
                if target != key:
                    targets.add(target)
        graph[key] = targets
    return files, graph


def circles(graph):
    """Strongly connected components with more than one file (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def layer_of(key):
    first = key.split("/")[0]
    for rank, (_, prefixes) in enumerate(LAYERS):
        if key in prefixes or first in prefixes:
            return rank
    return None


def main(argv):
    listing = "--list" in argv
    args = [a for a in argv if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    files, graph = imports(src)
    failures = []
    for comp in circles(graph):
        failures.append("import circle of %d files: %s" % (len(comp), ", ".join(comp)))
        for a in comp:
            for b in sorted(graph[a]):
                if b in comp:
                    failures.append("    %s -> %s" % (a, b))
    for key in sorted(graph):
        mine = layer_of(key)
        if mine is None:
            failures.append("src/%s: in no layer; add it to LAYERS in scripts/check-layers.py" % key)
            continue
        for target in sorted(graph[key]):
            theirs = layer_of(target)
            if theirs is not None and theirs < mine and target.split("/")[0] != key.split("/")[0]:
                failures.append("%s (layer '%s') imports %s (layer '%s', above it)"
                                % (key, LAYERS[mine][0], target, LAYERS[theirs][0]))
    if listing:
        for key in sorted(graph):
            print("%-28s -> %s" % (key, ", ".join(sorted(graph[key])) or "-"))
    if failures:
        print("check-layers: the crate's imports do not run one way:", file=sys.stderr)
        for line in failures:
            print("  " + line, file=sys.stderr)
        print("check-layers: import the lower layer from the higher one only; pass what the lower "
              "one needs as an argument or register a callback at start-up", file=sys.stderr)
        return 1
    print("check-layers: %d files, %d imports, no circle, every import points down"
          % (len(graph), sum(len(v) for v in graph.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
