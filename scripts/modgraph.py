#!/usr/bin/env python3
"""The crate's module graph, and the check that it has no cycle but the allowed ones.

Run from anywhere (the repository is found from this file's place, or given with
--root):

    python3 scripts/modgraph.py            # counts, then every cycle; exit 1 on a bad one
    python3 scripts/modgraph.py --edges    # one `A -> B` line per edge, sorted
    python3 scripts/modgraph.py --dot      # Graphviz; cycle edges in red
    python3 scripts/modgraph.py --why A B  # each file:line where A names B

A node is a top-level module of the crate (`src/event.rs` and `src/store/**` are `event`
and `store`), except that each folder `src/providers/<name>/` is its own node
`providers::<name>`, and the files directly in `src/providers/` are `providers`, the
registry. `src/lib.rs` and `src/main.rs` only declare modules and call the CLI, so they
are left out. An edge A -> B means code of A names B: a `use` of it (grouped and
multi-line lists included) or an inline path (`crate::b::f()`, `super::super::x`, a
child module named bare by its parent). Comments, string and character literals, and
items under `#[cfg(test)]` do not count: tests are not part of the library's graph.

The rules it checks (docs/ARCHITECTURE.md, "Invariants"):

- the graph has no cycle other than between the pure vocabulary types, `event` and
  `address`. A cycle is a strongly connected component of more than one node; it is
  allowed only if it is exactly one of the allowed sets ({event, address}, plus any
  given with --allow);
- the layer rules in LAYERS: a provider folder names only vocabulary (never the store,
  the spool or the state engine); the server names no provider; classification names
  only the event types; the lower floors name nothing above them;
- only the server names hyper (`hyper`, `hyper_util`, `http_body_util`);
- only the store writes a Redis key (a string literal opening with `dnd:`, `dndlink:`,
  `dndkey:` or `dndsession:` anywhere outside src/store/, its unit tests included).
"""
import argparse
import os
import re
import sys

# The one cycle the architecture accepts: two vocabulary types that name each other.
DEFAULT_ALLOWED = [frozenset({"event", "address"})]

# The lowest floor: plain types and the clock. They name only each other.
FLOOR = {"address", "error", "event", "redact", "secret", "time"}
# What a provider folder may name: the floor, and the vocabulary of a road.
VOCABULARY = FLOOR | {"classify", "fetch", "road", "signature"}


def _is_provider(node):
    return node == "providers" or node.startswith("providers::")


# (who, what it may name, why): `who` is a predicate on the naming node, `may` on the
# named one. An edge whose source matches `who` and whose target fails `may` breaks it.
LAYERS = [
    (_is_provider, lambda b: b in VOCABULARY or _is_provider(b),
     "a provider folder names only vocabulary, never the store, the spool or the state "
     "engine (" + ", ".join(sorted(VOCABULARY)) + ")"),
    (lambda a: a == "server", lambda b: not _is_provider(b),
     "the server names no provider"),
    (lambda a: a == "classify", lambda b: b in {"event", "address", "error"},
     "classification is pure: it names only the event types"),
    (lambda a: a in FLOOR, lambda b: b in FLOOR,
     "the lower floors name nothing above them (" + ", ".join(sorted(FLOOR)) + ")"),
    (lambda a: a in ("telemetry", "signature"), lambda b: b in FLOOR,
     "telemetry and the signature error name only the lower floors"),
]
# External crates only the server may name.
SERVER_ONLY_CRATES = {"hyper", "hyper_util", "http_body_util"}
# A Redis key written outside the store: a string literal that opens like one.
KEY_LITERAL = re.compile(r'"dnd(?:link|key|session)?:')

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"[0-9][0-9A-Za-z_]*")
RAW_STRING_OPEN = re.compile(r'(#*)"')
# Longest first, so `::` is never read as two `:` and `=>` never as `=`.
OPERATORS = ["..=", "...", "<<=", ">>=", "::", "->", "=>", "==", "!=", "<=", ">=",
             "&&", "||", "..", "+=", "-=", "*=", "/=", "%=", "^=", "&=", "|=",
             "<<", ">>"]
# Keywords that start an item or a statement: a `#[cfg(test)]` on one of these covers
# everything up to its `;` or its closing brace.
ITEM_KEYWORDS = {"mod", "fn", "use", "impl", "struct", "enum", "trait", "type", "const",
                 "static", "extern", "unsafe", "async", "pub", "macro_rules", "let",
                 "union", "default"}
# Path heads that can only mean this crate, or a place relative to the current module.
PATH_HEADS = {"crate", "self", "super"}


class Token:
    """One token of Rust source: its text, its line (1-based) and, for identifiers,
    `ident` set."""

    __slots__ = ("text", "line", "ident")

    def __init__(self, text, line, ident=False):
        self.text = text
        self.line = line
        self.ident = ident

    def __repr__(self):
        return f"Token({self.text!r}, {self.line})"


def tokenize(src):
    """The code tokens of a Rust file: comments (nested block comments too), string,
    byte, raw and character literals and lifetimes are left out, so nothing written
    in them can look like a path."""
    tokens = []
    i, n, line = 0, len(src), 1

    def skip_to(j):
        nonlocal i, line
        line += src.count("\n", i, j)
        i = j

    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            skip_to(n if j < 0 else j)
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            skip_to(j)
        elif c == '"':
            skip_to(_end_of_string(src, i + 1))
        elif c == "'":
            if src.startswith("\\", i + 1):
                # An escaped character: '\n', '\'', '\u{1F600}'.
                j = src.find("'", i + 3)
                skip_to(n if j < 0 else j + 1)
            elif i + 2 < n and src[i + 2] == "'":
                skip_to(i + 3)  # a plain character: 'x'
            else:
                m = IDENT.match(src, i + 1)  # a lifetime or a loop label
                skip_to(m.end() if m else i + 1)
        elif IDENT.match(src, i):
            m = IDENT.match(src, i)
            word = m.group()
            j = m.end()
            raw = RAW_STRING_OPEN.match(src, j) if word in ("r", "br", "cr") else None
            if raw:
                closing = '"' + raw.group(1)
                k = src.find(closing, raw.end())
                skip_to(n if k < 0 else k + len(closing))
            elif word in ("b", "c") and src.startswith("'", j):
                # A byte character b'x' / b'\n': the quote branch above skips it next.
                i = j
            elif word in ("b", "c") and src.startswith('"', j):
                skip_to(_end_of_string(src, j + 1))
            elif word == "r" and src.startswith("#", j) and IDENT.match(src, j + 1):
                m = IDENT.match(src, j + 1)  # a raw identifier, r#type
                tokens.append(Token(m.group(), line, ident=True))
                i = m.end()
            else:
                tokens.append(Token(word, line, ident=True))
                i = j
        elif NUMBER.match(src, i):
            m = NUMBER.match(src, i)
            tokens.append(Token(m.group(), line))
            i = m.end()
        else:
            op = next((o for o in OPERATORS if src.startswith(o, i)), c)
            tokens.append(Token(op, line))
            i += len(op)
    return tokens


def _end_of_string(src, j):
    """The index just past the closing quote of a string whose body starts at j."""
    n = len(src)
    while j < n:
        if src[j] == "\\":
            j += 2
        elif src[j] == '"':
            return j + 1
        else:
            j += 1
    return n


OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")", "]", "}"}


def _matching(tokens, i):
    """The index of the bracket that closes the one at i (or len(tokens))."""
    depth = 0
    for j in range(i, len(tokens)):
        t = tokens[j].text
        if t in OPENERS:
            depth += 1
        elif t in CLOSERS:
            depth -= 1
            if depth == 0:
                return j
    return len(tokens)


def _cfg_is_test_only(tokens, i, end):
    """Whether the cfg predicate tokens[i:end] holds only in test builds: `test`, an
    `all(...)` with such a member, an `any(...)` of only such members."""
    preds, _ = _cfg_predicates(tokens, i, end)
    return len(preds) == 1 and preds[0]


def _cfg_predicates(tokens, i, end):
    """The cfg predicates in tokens[i:end], each as "implies test", and where they end."""
    out = []
    while i < end:
        t = tokens[i].text
        if t == ",":
            i += 1
            continue
        if t in ("all", "any", "not") and i + 1 < end and tokens[i + 1].text == "(":
            close = _matching(tokens, i + 1)
            inner, _ = _cfg_predicates(tokens, i + 2, close)
            if t == "all":
                out.append(any(inner))
            elif t == "any":
                out.append(bool(inner) and all(inner))
            else:
                out.append(False)
            i = close + 1
        else:
            out.append(t == "test" and not (i + 1 < end and tokens[i + 1].text == "="))
            # skip `feature = "x"` (its string is already gone) up to the next comma
            while i < end and tokens[i].text != ",":
                i += 1
    return out, i


def _test_attribute(tokens, i):
    """If a `#[cfg(test)]` or `#![cfg(test)]` attribute starts at i, return
    (inner, index past its `]`); else None."""
    if tokens[i].text != "#":
        return None
    j = i + 1
    inner = j < len(tokens) and tokens[j].text == "!"
    if inner:
        j += 1
    if j + 2 >= len(tokens) or tokens[j].text != "[" or tokens[j + 1].text != "cfg" \
            or tokens[j + 2].text != "(":
        return None
    close_pred = _matching(tokens, j + 2)
    close_attr = _matching(tokens, j)
    if not _cfg_is_test_only(tokens, j + 3, close_pred):
        return None
    return inner, close_attr + 1


def _end_of_item(tokens, i):
    """The index just past the item, statement, field, variant or arm that starts at i
    (after its attributes)."""
    n = len(tokens)
    while i < n and tokens[i].text == "#":  # further outer attributes
        j = i + 1
        if j < n and tokens[j].text == "[":
            i = _matching(tokens, j) + 1
        else:
            break
    if i >= n:
        return n
    is_item = tokens[i].text in ITEM_KEYWORDS or tokens[i].text == "{"
    # `static X: T = ...;`, `let x = ...;` and `const X: T = ...;` may hold braces
    # before their `;`; every other item ends at its `;` or its closing brace.
    k = i
    if k < n and tokens[k].text == "pub":
        k += 1
        if k < n and tokens[k].text == "(":
            k = _matching(tokens, k) + 1
    keyword = tokens[k].text if k < n else ""
    after = tokens[k + 1].text if k + 1 < n else ""
    ends_at_semicolon = keyword in ("static", "let") or (
        keyword == "const" and after not in ("fn", "unsafe", "async", "extern"))
    depth = 0
    j = i
    while j < n:
        t = tokens[j].text
        if t in OPENERS:
            depth += 1
        elif t in CLOSERS:
            if depth == 0:
                return j  # the enclosing scope closes: the item ran to its end
            depth -= 1
            if depth == 0 and t == "}":
                if is_item and not ends_at_semicolon:
                    return j + 1
                if not is_item and (j + 1 >= n or tokens[j + 1].text not in (".", "?", "as")):
                    return j + 1 if j + 1 >= n or tokens[j + 1].text != "," else j + 2
        elif depth == 0:
            if t == ";":
                return j + 1
            if t == "," and not is_item:
                return j + 1
        j += 1
    return n


def strip_test_code(tokens):
    """The tokens with every `#[cfg(test)]` item removed, and whether an inner
    `#![cfg(test)]` at the file's top makes the whole file test-only."""
    out = []
    i, n = 0, len(tokens)
    depth = 0
    while i < n:
        found = _test_attribute(tokens, i)
        if found is None:
            t = tokens[i].text
            if t in OPENERS:
                depth += 1
            elif t in CLOSERS:
                depth -= 1
            out.append(tokens[i])
            i += 1
            continue
        inner, after = found
        if inner:
            if depth == 0:
                return [], True
            # the rest of the enclosing block, up to (not including) its closing brace
            d, j = 0, after
            while j < n:
                t = tokens[j].text
                if t in OPENERS:
                    d += 1
                elif t in CLOSERS:
                    if d == 0:
                        break
                    d -= 1
                j += 1
            i = j
        else:
            i = _end_of_item(tokens, after)
    return out, False


def module_path(rel):
    """The module path of a file under src/, e.g. store/conn.rs -> ['store', 'conn'],
    store/mod.rs -> ['store']."""
    parts = rel.replace(os.sep, "/").split("/")
    stem = parts[-1][:-3]
    return parts[:-1] if stem == "mod" else parts[:-1] + [stem]


def node_of_file(rel, provider_dirs):
    """The graph node a file under src/ belongs to."""
    parts = rel.replace(os.sep, "/").split("/")
    if parts[0] == "providers" or parts[0] == "providers.rs":
        if len(parts) >= 3 and parts[1] in provider_dirs:
            return "providers::" + parts[1]
        return "providers"
    return parts[0][:-3] if len(parts) == 1 else parts[0]


class Graph:
    """The module graph: its nodes, and for each edge every place that makes it."""

    def __init__(self):
        self.nodes = set()
        self.sites = {}  # (from, to) -> [(file, line)]
        self.unresolved = []  # (file, line, path): crate paths to no known module
        self.externals = {}  # (node, crate) -> [(file, line)]: external paths named
        self.key_literals = []  # (file, line): Redis key literals outside the store

    @property
    def edges(self):
        return sorted(self.sites)

    def successors(self):
        out = {node: set() for node in self.nodes}
        for a, b in self.sites:
            out[a].add(b)
        return out


def _parse_use_tree(tokens, i, prefix, out):
    """Read one use tree starting at i, add each leaf path (as (segments, line)) to
    out, and return the index past it."""
    segs = list(prefix)
    line = tokens[i].line if i < len(tokens) else 0
    n = len(tokens)
    if i < n and tokens[i].text == "::":  # `use ::foo` is an external crate
        segs.append("::")
        i += 1
    while i < n:
        t = tokens[i]
        if t.text == "{":
            close = _matching(tokens, i)
            j = i + 1
            while j < close:
                if tokens[j].text == ",":
                    j += 1
                    continue
                j = _parse_use_tree(tokens, j, segs, out)
            return close + 1
        if t.text == "*":
            out.append((segs, t.line))
            return i + 1
        if t.ident:
            if t.text == "self" and segs:  # `use a::{self}` names `a` itself
                out.append((segs, t.line))
            else:
                segs = segs + [t.text]
                line = t.line
                if i + 1 < n and tokens[i + 1].text == "::":
                    i += 2
                    continue
                out.append((segs, line))
            i += 1
            if i + 1 < n and tokens[i].text == "as":
                i += 2
            return i
        return i + 1  # something unexpected: stop this tree
    return i


def _scopes(tokens):
    """For each token index, the inline module path (`mod a { mod b { ... } }`) it
    sits in, and the child modules declared in each such scope."""
    scope_at = []
    children = {}
    stack = []  # (name, brace depth at which its body opened)
    depth = 0
    n = len(tokens)
    for i, t in enumerate(tokens):
        scope_at.append(tuple(name for name, _ in stack))
        if t.text == "mod" and i + 1 < n and tokens[i + 1].ident:
            name = tokens[i + 1].text
            children.setdefault(scope_at[-1], set()).add(name)
            if i + 2 < n and tokens[i + 2].text == "{":
                stack.append((name, depth + 1))
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            if stack and stack[-1][1] == depth:
                stack.pop()
            depth -= 1
    return scope_at, children


def paths_in(tokens):
    """Every crate-relative path the code names, as (scope, segments, line): the leaves
    of each `use` tree and every inline path whose head is `crate`, `$crate`, `self`,
    `super` or a child module's name. `scope` is the inline module path it is in."""
    scope_at, children = _scopes(tokens)
    found = []
    i, n = 0, len(tokens)
    while i < n:
        t = tokens[i]
        prev = tokens[i - 1].text if i else ""
        if t.text == "use" and prev not in ("::", ".") and i + 1 < n:
            leaves = []
            j = _parse_use_tree(tokens, i + 1, [], leaves)
            for segs, line in leaves:
                found.append((scope_at[i], segs, line))
            i = j
            continue
        if t.text == "mod" and i + 1 < n and tokens[i + 1].ident:
            i += 2  # a declaration names its child; it is not a use of it
            continue
        head_ok = t.text in PATH_HEADS or t.text in SERVER_ONLY_CRATES \
            or t.text in children.get(scope_at[i], ())
        if t.ident and head_ok and prev not in ("::", ".") and i + 1 < n \
                and tokens[i + 1].text == "::":
            segs, line, j = [t.text], t.line, i + 1
            while j + 1 < n and tokens[j].text == "::" and tokens[j + 1].ident:
                segs.append(tokens[j + 1].text)
                line = tokens[j + 1].line
                j += 2
            found.append((scope_at[i], segs, line))
            i = j
            continue
        i += 1
    return found


def resolve(module, scope, segs, children):
    """The absolute module path (from the crate root) that segs names, seen from the
    file's module path plus inline scope; None for an external crate or a path that
    climbs above the root."""
    here = list(module) + list(scope)
    if not segs or segs[0] == "::":
        return None
    head = segs[0]
    if head == "crate":
        base, rest = [], segs[1:]
    elif head in ("self", "super"):
        base, rest = here, segs
        while rest and rest[0] in ("self", "super"):
            if rest[0] == "super":
                if not base:
                    return None
                base = base[:-1]
            rest = rest[1:]
    elif head in children.get(tuple(scope), ()):
        base, rest = here, segs
    else:
        return None  # std, serde, tokio, ...
    return base + rest


def node_of_path(path, top_modules, provider_dirs):
    """The node an absolute module path falls in, or None if it names no module of
    the crate (a crate-root item or re-export)."""
    if not path or path[0] not in top_modules:
        return None
    if path[0] == "providers" and len(path) >= 2 and path[1] in provider_dirs:
        return "providers::" + path[1]
    return path[0]


def source_files(src):
    """Every .rs file under src, relative to it, but lib.rs, main.rs and src/bin/."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src).replace(os.sep, "/")
            if rel in ("lib.rs", "main.rs") or rel.startswith("bin/"):
                continue
            out.append(rel)
    return out


def _test_module_files(rel, tokens, scope_at):
    """Files declared by `#[cfg(test)] mod name;` in this file: test-only, so out of
    the graph."""
    out = set()
    base_dir = os.path.dirname(rel)
    stem = os.path.basename(rel)[:-3]
    if stem not in ("mod", "lib", "main"):
        base_dir = os.path.join(base_dir, stem)
    for i in range(len(tokens)):
        found = _test_attribute(tokens, i)
        if not found or found[0]:
            continue
        j = found[1]
        while j < len(tokens) and tokens[j].text == "#" and j + 1 < len(tokens) \
                and tokens[j + 1].text == "[":
            j = _matching(tokens, j + 1) + 1
        k = j
        while k < len(tokens) and tokens[k].text in ("pub", "(", "crate", "super", ")"):
            k += 1
        if k + 2 < len(tokens) and tokens[k].text == "mod" and tokens[k + 1].ident \
                and tokens[k + 2].text == ";":
            d = os.path.join(base_dir, *scope_at[i])
            name = tokens[k + 1].text
            for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
                out.add(os.path.normpath(cand).replace(os.sep, "/"))
    return out


def build_graph(root):
    """Read root/src and return its Graph."""
    src = os.path.join(root, "src")
    files = source_files(src)
    providers = os.path.join(src, "providers")
    provider_dirs = set()
    if os.path.isdir(providers):
        provider_dirs = {d for d in os.listdir(providers)
                         if os.path.isdir(os.path.join(providers, d))}
    graph = Graph()
    parsed = {}
    test_only = set()
    for rel in files:
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            text = f.read()
        tokens = tokenize(text)
        if not rel.startswith("store/"):
            for number, line in enumerate(text.split("\n"), 1):
                code = line.split("//", 1)[0]
                if KEY_LITERAL.search(code):
                    graph.key_literals.append(("src/" + rel, number))
        scope_at, _ = _scopes(tokens)
        test_only |= _test_module_files(rel, tokens, scope_at)
        parsed[rel] = tokens
    top_modules = set()
    for rel in files:
        if rel in test_only:
            continue
        top_modules.add(rel.split("/")[0].removesuffix(".rs"))
        graph.nodes.add(node_of_file(rel, provider_dirs))
    for rel in files:
        if rel in test_only:
            continue
        tokens, whole_file_is_test = strip_test_code(parsed[rel])
        if whole_file_is_test:
            continue
        here = node_of_file(rel, provider_dirs)
        module = module_path(rel)
        _, children = _scopes(tokens)
        for scope, segs, line in paths_in(tokens):
            path = resolve(module, scope, segs, children)
            if not path:
                if segs and segs[0] in SERVER_ONLY_CRATES:
                    graph.externals.setdefault((here, segs[0]), []).append(
                        ("src/" + rel, line))
                continue  # external, or the crate root itself (`use super::*` at the top)
            target = node_of_path(path, top_modules, provider_dirs)
            if target is None:
                graph.unresolved.append(("src/" + rel, line, "::".join(path)))
                continue
            if target != here:
                graph.sites.setdefault((here, target), []).append(("src/" + rel, line))
    return graph


def strongly_connected(graph):
    """The strongly connected components of more than one node, each sorted, in
    sorted order (Tarjan's algorithm)."""
    succ = graph.successors()
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(max(1000, 10 * len(succ) + 100))
    for v in sorted(succ):
        if v not in index:
            visit(v)
    return sorted(comps)


def dot(graph, cycles):
    """The graph in Graphviz dot; edges inside a cycle are red."""
    in_cycle = {}
    for comp in cycles:
        for v in comp:
            in_cycle[v] = id(comp)
    lines = ["digraph modgraph {", "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
    for v in sorted(graph.nodes):
        lines.append(f'  "{v}";')
    for a, b in graph.edges:
        red = a in in_cycle and in_cycle.get(a) == in_cycle.get(b)
        lines.append(f'  "{a}" -> "{b}"' + (" [color=red];" if red else ";"))
    lines.append("}")
    return "\n".join(lines)


def check(graph, allowed, out):
    """Write the counts and every cycle to out; return the exit code (1 if a cycle is
    not one of the allowed sets)."""
    cycles = strongly_connected(graph)
    out.write(f"{len(graph.nodes)} nodes, {len(graph.edges)} edges\n")
    bad = 0
    for comp in cycles:
        ok = frozenset(comp) in allowed
        bad += not ok
        out.write(f"cycle: {' <-> '.join(comp)}{'' if ok else '  (not allowed)'}\n")
    for path, line, name in graph.unresolved:
        # a crate-root item or re-export: no module, so no edge; shown so none hides
        out.write(f"note: {path}:{line}: crate::{name} names no module\n")
    if bad:
        sets = ", ".join("{" + ", ".join(sorted(s)) + "}" for s in allowed)
        out.write(f"not allowed: {bad} cycle(s) other than {sets}; "
                  "`--edges` and `--why A B` show the edges that make them\n")
    broken = 0
    for a, b in graph.edges:
        for who, may, why in LAYERS:
            if who(a) and not may(b):
                broken += 1
                path, line = graph.sites[(a, b)][0]
                out.write(f"layer: {a} -> {b} ({path}:{line}): {why}\n")
    for (node, crate), sites in sorted(graph.externals.items()):
        if node != "server":
            broken += 1
            out.write(f"layer: {node} names {crate} ({sites[0][0]}:{sites[0][1]}): "
                      "only the server knows hyper\n")
    for path, line in graph.key_literals:
        broken += 1
        out.write(f"layer: {path}:{line} writes a Redis key: only the store knows the "
                  "key layout\n")
    if broken:
        out.write(f"not allowed: {broken} layer rule(s) broken\n")
    return 1 if bad or broken else 0


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(
        description="Module graph of the crate; fails on a cycle other than the "
                    "allowed vocabulary pair {event, address}.")
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), help="the repository root (holding src/)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dot", action="store_true", help="print Graphviz dot")
    mode.add_argument("--edges", action="store_true", help="print one `A -> B` per edge")
    mode.add_argument("--why", nargs=2, metavar=("A", "B"),
                      help="print each file:line where module A names module B")
    parser.add_argument("--allow", action="append", default=[], metavar="X,Y",
                        help="another allowed cycle: exactly these nodes (repeatable)")
    args = parser.parse_args(argv)

    if not os.path.isdir(os.path.join(args.root, "src")):
        parser.error(f"no src/ under {args.root}; run from the repository or pass --root")
    graph = build_graph(args.root)
    allowed = list(DEFAULT_ALLOWED)
    allowed += [frozenset(s.strip() for s in a.split(",") if s.strip()) for a in args.allow]

    if args.dot:
        out.write(dot(graph, strongly_connected(graph)) + "\n")
        return 0
    if args.edges:
        for a, b in graph.edges:
            out.write(f"{a} -> {b}\n")
        return 0
    if args.why:
        a, b = args.why
        sites = graph.sites.get((a, b), [])
        if not sites:
            out.write(f"{a} does not name {b}\n")
            return 1
        src_lines = {}
        for path, line in dict.fromkeys(sites):  # one line per place, in order
            if path not in src_lines:
                with open(os.path.join(args.root, path), encoding="utf-8") as f:
                    src_lines[path] = f.read().split("\n")
            out.write(f"{path}:{line}: {src_lines[path][line - 1].strip()}\n")
        return 0
    return check(graph, allowed, out)


if __name__ == "__main__":
    sys.exit(main())
