#!/usr/bin/env python3
"""Import circles between the crate's modules, from its `crate::` / `super::` / `self::` paths.

Two levels are checked, as in a layered design data flows one way at each:
- the top-level modules of the library (`finetune` -> `report` -> `finetune` is a circle);
- the sibling files of each folder (`report/plot.rs` -> `report/run.rs` -> `report/plot.rs`),
  and the files of the binary (`src/bin/tlearn/`), whose root is `main.rs`.
A child using its parent's items (`super::Thing` defined in `x.rs` beside `x/`) is not a circle.

Prints each circle and exits 1 when there is one: none is allowed.
"""
import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
USE = re.compile(r"\buse\s+([^;]+);", re.S)
PATH = re.compile(rf"\b(crate|super|self)((?:::{IDENT})+)")


def module_of(file, root):
    """Module path (tuple) of a source file under `root` (`lib.rs` / `main.rs` is ())."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def expand_use(tree):
    """Every path a use-tree names: `a::{b, c::{d}}` -> a::b, a::c::d."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree.split(" as ")[0]]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    items.append(inner[start:])
    return [p for item in items if item for p in expand_use(prefix + item)]


def references(text):
    """Paths starting with crate::, super:: or self:: in use statements and in code, and paths
    into the file's own child modules (`mod x;` then `x::thing`), written as `self::x::thing`."""
    text = re.sub(r"//[^\n]*", "", text)
    children = set(re.findall(rf"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+({IDENT})\s*;", text, re.M))
    own = re.compile(r"(crate|super|self)::")
    found = []
    for m in USE.finditer(text):
        for p in expand_use(m.group(1)):
            if own.match(p):
                found.append(p)
            elif p.split("::")[0] in children:
                found.append("self::" + p)
    text = USE.sub("", text)
    found += [m.group(1) + m.group(2) for m in PATH.finditer(text)]
    for child in children:
        found += ["self::" + child for _ in re.finditer(rf"(?<![:\w]){child}::", text)]
    return found


def resolve(path, here, modules):
    """The deepest module a path reaches, from the module `here` (a file's module)."""
    segs = path.split("::")
    base = list(here)
    if segs[0] == "crate":
        base = []
    elif segs[0] == "super":
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
        segs = ["_"] + segs
    target = tuple(base)
    for seg in segs[1:]:
        if seg in ("self", "super", "*"):
            break
        if target + (seg,) in modules:
            target = target + (seg,)
        else:
            break
    return target


def graph(root, files):
    """Edges between modules: (from, to) for every reference."""
    modules = {module_of(f, root) for f in files}
    edges = set()
    for f in files:
        here = module_of(f, root)
        for path in references(f.read_text(encoding="utf-8")):
            edges.add((here, resolve(path, here, modules)))
    return edges


def circles(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for a, b in edges:
            if a != v:
                continue
            if b not in index:
                visit(b)
                low[v] = min(low[v], low[b])
            elif b in on:
                low[v] = min(low[v], index[b])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def level_circles(edges, name):
    """Circles among top-level modules, and among the children of each module."""
    found = []
    top = {(a[:1], b[:1]) for a, b in edges if a[:1] and b[:1] and a[:1] != b[:1]}
    for comp in circles({n for e in top for n in e}, top):
        found.append(f"{name}: " + " <-> ".join("::".join(c) for c in comp))
    parents = {a[:-1] for a, _ in edges if a} | {()}
    for parent in parents:
        depth = len(parent) + 1
        sib = set()
        for a, b in edges:
            if len(a) >= depth and len(b) >= depth and a[: depth - 1] == parent == b[: depth - 1]:
                if a[:depth] != b[:depth]:
                    sib.add((a[:depth], b[:depth]))
        if parent == ():
            continue
        for comp in circles({n for e in sib for n in e}, sib):
            found.append(f"{name}: " + " <-> ".join("::".join(c) for c in comp))
    return found


def main():
    repo = Path(__file__).resolve().parent.parent
    src = repo / "src"
    lib = [f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts]
    found = level_circles(graph(src, lib), "lib")
    for binary in sorted((src / "bin").iterdir()):
        files = list(binary.rglob("*.rs"))
        edges = graph(binary, files)
        # The binary's files are siblings under its root: check them as one level.
        top = {(a[:1], b[:1]) for a, b in edges if a[:1] != b[:1]}
        for comp in circles({n for e in top for n in e}, top):
            found.append(f"bin {binary.name}: " + " <-> ".join("::".join(c) or "main" for c in comp))
    found = sorted(set(found))
    for c in found:
        print("import circle: " + c)
    if found:
        sys.exit(1)
    print("import circles: none")


if __name__ == "__main__":
    main()
