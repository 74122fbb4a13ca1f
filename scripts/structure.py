#!/usr/bin/env python3
"""The structure of the crate's source, checked against the rules of docs/layout.md:

- no import cycle between files;
- layers only look down: `api` and the filter engine import nothing of Tributary's, `cloud` never imports
  `worker`, `controller`, `admission` or `webhook`;
- a kind's folder under `controller/` never imports another kind's folder (what two kinds share lives in
  `controller/driver/` or `controller/resources/`);
- no function over 80 lines and no file over 500 lines outside tests.

`python3 scripts/structure.py [SRC]` prints a summary and each finding, and exits 1 when there is any
(`--summary` prints only the counts). Imports are read from `use` items and `crate::`/`super::` paths in
the code, resolved to the file of the longest module path that exists. A module's use of its own
submodules (declaring and re-exporting them) is not counted as an import: it owns them.
"""

import os
import re
import sys

KINDS = ("topic", "queue", "subscription", "dead_letter", "consumer", "device_stream")
LOWER = {  # a layer -> the layers it must not import
    "api": ("admission", "cloud", "controller", "operate", "webhook", "worker", "filter"),
    "cloud": ("admission", "controller", "webhook", "worker"),
    "filter": ("admission", "api", "cloud", "controller", "operate", "webhook", "worker"),
}
MAX_FUNCTION, MAX_FILE = 80, 500
TEST_FILE = re.compile(r"(^|/)(tests?|[a-z_]+_tests|proptests)\.rs$|(^|/)tests/")


def module_of(src, path):
    """The module path of a file: src/a/b.rs and src/a/b/mod.rs -> ["a", "b"]."""
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_of(src, modules, parts):
    """The file of the longest prefix of `parts` that is a module of the crate."""
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in modules:
            return modules[tuple(parts[:n])]
    return None


def expand(tree):
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = tree.strip()
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner = tree[:start], tree[start + 1 : i]
                items, depth2, last = [], 0, 0
                for j, c in enumerate(inner + ","):
                    if c == "{":
                        depth2 += 1
                    elif c == "}":
                        depth2 -= 1
                    elif c == "," and depth2 == 0:
                        if inner[last:j].strip():
                            items.append(inner[last:j])
                        last = j + 1
                return [p for item in items for p in expand(prefix + item.strip())]
    return [re.split(r"\s+as\s+", tree)[0].strip()]


def imports(text, here):
    """Module paths (lists of names, absolute from the crate root) that `text` of module `here` uses."""
    text = blank_noise(text)
    paths = []
    for tree in re.findall(r"\buse\s+([^;]+);", text):
        paths += expand(tree)
    paths += re.findall(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text)
    found = []
    for path in paths:
        parts = [p for p in path.split("::") if p]
        if not parts:
            continue
        if parts[0] == "crate":
            found.append(parts[1:])
        elif parts[0] in ("super", "self"):
            base = list(here)
            while parts and parts[0] in ("super", "self"):
                if parts.pop(0) == "super":
                    base = base[:-1]
            found.append(base + parts)
    return found


CODE_NOISE = re.compile(
    r"""//[^\n]*|/\*.*?\*/|\br(#*)".*?"\1|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])'""", re.S
)


def blank_noise(text):
    """`text` with comments and string and char literals blanked (newlines kept), so that neither braces
    nor paths in them count. One left-to-right scan: a literal's text is never read as a comment, nor the
    other way round."""
    return CODE_NOISE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def functions_over(text, limit):
    """(name, lines) of each `fn` longer than `limit` lines outside `#[cfg(test)]` modules."""
    lines = blank_noise(text).splitlines()
    over, i = [], 0
    while i < len(lines):
        if re.match(r"\s*#\[cfg\(test\)\]", lines[i]):
            break  # test modules come last in this code base
        m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?fn\s+([a-z_][a-z0-9_]*)", lines[i])
        if m:
            depth, j, opened = 0, i, False
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                opened = opened or "{" in lines[j]
                if opened and depth <= 0 or (not opened and lines[j].rstrip().endswith(";")):
                    break
                j += 1
            if j - i + 1 > limit:
                over.append((m.group(5), j - i + 1))
        i += 1
    return over


def strongly_connected(graph):
    """Tarjan's strongly connected components with more than one file."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def kind_of(module):
    return module[1] if len(module) > 1 and module[0] == "controller" and module[1] in KINDS else None


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith(".rs"))
    modules = {tuple(module_of(src, f)): f for f in files}
    graph, findings = {}, {"cycles": [], "upward imports": [], "kind imports kind": [],
                           "functions over 80 lines": [], "files over 500 lines": []}
    for path in files:
        rel = os.path.relpath(path, src)
        here = module_of(src, path)
        text = open(path, encoding="utf-8").read()
        code = text.split("#[cfg(test)]")[0]  # a test module's imports are not the module's
        used = [p for p in imports(code, here) if p[: len(here)] != here]  # not its own submodules
        targets = {file_of(src, modules, p) for p in used} - {None, path}
        graph[rel] = sorted(os.path.relpath(t, src) for t in targets)
        for target in graph[rel]:
            there = module_of(src, os.path.join(src, target))
            if here and there and there[0] in LOWER.get(here[0], ()):
                findings["upward imports"].append(f"{rel} -> {target}")
            if kind_of(here) and kind_of(there) and kind_of(here) != kind_of(there):
                findings["kind imports kind"].append(f"{rel} -> {target}")
        if TEST_FILE.search(rel):
            continue
        body = text.split("#[cfg(test)]")[0]
        if len(body.splitlines()) > MAX_FILE:
            findings["files over 500 lines"].append(f"{len(body.splitlines())} {rel}")
        for name, length in functions_over(text, MAX_FUNCTION):
            findings["functions over 80 lines"].append(f"{length} {rel}:{name}")
    # Test files (`#[cfg(test)] mod tests;`) take part in no cycle that matters: leave them out.
    code = {k: [t for t in v if not TEST_FILE.search(t)] for k, v in graph.items() if not TEST_FILE.search(k)}
    findings["cycles"] = [" <-> ".join(c) for c in strongly_connected(code)]
    print(f"structure of {os.path.normpath(src)}: {len(files)} files")
    for what, items in findings.items():
        print(f"- {what}: {len(items)}")
        if "--summary" not in sys.argv:
            for item in sorted(items):
                print(f"    {item}")
    sys.exit(1 if any(findings.values()) else 0)


if __name__ == "__main__":
    main()
