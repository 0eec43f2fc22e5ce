#!/usr/bin/env python3
"""Tests of scripts/modgraph.py on small fake crates written to a temporary folder.

Run: python3 -m unittest scripts/test_modgraph.py   (or python3 scripts/test_modgraph.py)
"""
import io
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import modgraph  # noqa: E402

SCRIPT = os.path.join(HERE, "modgraph.py")

# A crate whose only cycle is the allowed vocabulary pair, and which exercises every
# way of naming (or seeming to name) a module. Modules `z` and `q` are named only in
# comments, strings and test code, so no edge may reach them.
VOCABULARY_CRATE = {
    "lib.rs": """
        //! The map. lib.rs names every module but is left out of the graph.
        pub mod address; pub mod event; pub mod pipeline; pub mod store;
        pub mod config; pub mod error; pub mod z; pub mod q; pub mod providers;
        use crate::z::Everything;
    """,
    "main.rs": "fn main() { dndgate::pipeline::run(crate::q::X); }\n",
    "address.rs": "use crate::event::Channel;\npub struct Address;\n",
    "event.rs": """
        use crate::address::Address;
        pub enum Channel { Sms }
    """,
    "z.rs": "pub struct Everything;\n",
    "q.rs": "pub struct X;\n",
    "error.rs": "pub struct Error;\n",
    "config.rs": "pub struct Config;\n",
    "pipeline/mod.rs": """
        //! The road. A doc line naming crate::z::Everything is no edge.
        mod ses;
        use crate::{
            address::{self, Address},
            event::{Channel as Ch,
                    Scope},
            error::*,
        };
        use std::collections::HashMap;

        /// Calls crate::z::Everything in a doc comment: no edge.
        pub fn run() -> Result<(), crate::store::StoreError> {
            let quote = '"'; // a quote character must not open a string
            let s = "crate::z::Everything in a string";
            let raw = r#"a "raw" string naming crate::z::Everything"#;
            let bytes = b"crate::z";
            /* a block comment /* nested */ naming crate::z::Everything */
            let _c = crate::config::Config; // inline path, after all of the above
            ses::handle();
            fn takes<'a>(x: &'a str) -> &'a str { x }
            Ok(())
        }

        #[cfg(test)]
        mod tests {
            use crate::q;
            use super::*;
            #[test]
            fn t() { let _ = crate::z::Everything; }
        }

        #[cfg(test)]
        fn helper_for_tests() -> crate::q::X { crate::q::X }

        pub fn after_the_tests() {}
    """,
    "pipeline/ses.rs": """
        use super::run; // same node: no edge
        pub fn handle() { let _ = super::super::store::Store; }
    """,
    "store/mod.rs": """
        pub mod conn;
        pub struct Store;
        pub struct StoreError;
        use crate::event::{
            Channel,
        };
    """,
    "store/conn.rs": "use super::Store;\n",
    "providers/mod.rs": """
        //! The registry.
        pub mod twilio;
        pub mod meta;
        pub struct WebhookRequest;
    """,
    "providers/twilio/mod.rs": """
        mod verify;
        use super::WebhookRequest;
        use crate::event::Channel;
        pub fn parse() {}
    """,
    "providers/twilio/verify.rs": """
        use super::super::WebhookRequest;
        use crate::providers::meta::Shared;
        use crate::error::Error;
    """,
    "providers/meta/mod.rs": """
        pub struct Shared;
        use crate::providers::WebhookRequest;
        use crate::address::Address;
    """,
}

VOCABULARY_EDGES = [
    ("address", "event"),
    ("event", "address"),
    ("pipeline", "address"),
    ("pipeline", "config"),
    ("pipeline", "error"),
    ("pipeline", "event"),
    ("pipeline", "store"),
    ("providers::meta", "address"),
    ("providers::meta", "providers"),
    ("providers::twilio", "error"),
    ("providers::twilio", "event"),
    ("providers::twilio", "providers"),
    ("providers::twilio", "providers::meta"),
    ("store", "event"),
]


def write_crate(root, files):
    for rel, text in files.items():
        path = os.path.join(root, "src", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))


def run(root, *args):
    """(exit code, output) of modgraph's main on the crate at root."""
    out = io.StringIO()
    code = modgraph.main(["--root", root, *args], out=out)
    return code, out.getvalue()


class VocabularyCrate(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        write_crate(self.root, VOCABULARY_CRATE)

    def tearDown(self):
        self.tmp.cleanup()

    def test_edges(self):
        self.assertEqual(modgraph.build_graph(self.root).edges, VOCABULARY_EDGES)

    def test_edges_output_is_sorted_lines(self):
        code, out = run(self.root, "--edges")
        self.assertEqual(code, 0)
        self.assertEqual(out.splitlines(), [f"{a} -> {b}" for a, b in VOCABULARY_EDGES])

    def test_nodes(self):
        self.assertEqual(sorted(modgraph.build_graph(self.root).nodes), [
            "address", "config", "error", "event", "pipeline", "providers",
            "providers::meta", "providers::twilio", "q", "store", "z"])

    def test_comments_strings_and_tests_name_nothing(self):
        targets = {b for _, b in modgraph.build_graph(self.root).edges}
        self.assertNotIn("z", targets)
        self.assertNotIn("q", targets)

    def test_only_the_vocabulary_cycle_passes(self):
        code, out = run(self.root)
        self.assertEqual(code, 0, out)
        self.assertIn("11 nodes, 14 edges", out)
        cycles = [line for line in out.splitlines() if line.startswith("cycle:")]
        self.assertEqual(cycles, ["cycle: address <-> event"])
        self.assertNotIn("not allowed", out)

    def test_why_names_the_lines(self):
        code, out = run(self.root, "--why", "pipeline", "event")
        self.assertEqual(code, 0)
        # one line per place, though `event::{Channel as Ch,` names two items there
        self.assertEqual(out.splitlines(), [
            "src/pipeline/mod.rs:5: event::{Channel as Ch,",
            "src/pipeline/mod.rs:6: Scope},",
        ])
        code, out = run(self.root, "--why", "pipeline", "store")
        self.assertEqual(out.splitlines(), [
            "src/pipeline/mod.rs:12: pub fn run() -> Result<(), crate::store::StoreError> {",
            "src/pipeline/ses.rs:2: pub fn handle() { let _ = super::super::store::Store; }",
        ])
        code, out = run(self.root, "--why", "pipeline", "z")
        self.assertEqual(code, 1)

    def test_dot_marks_cycle_edges_red(self):
        code, out = run(self.root, "--dot")
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("digraph modgraph {"))
        self.assertIn('"address" -> "event" [color=red];', out)
        self.assertIn('"event" -> "address" [color=red];', out)
        self.assertIn('"pipeline" -> "store";', out)
        self.assertIn('"z";', out)


class CycleCrate(unittest.TestCase):
    """A crate with the allowed pair and a forbidden cycle pipeline -> store ->
    report -> pipeline."""

    FILES = {
        "lib.rs": "pub mod address; pub mod event; pub mod pipeline; pub mod store;\n",
        "address.rs": "use crate::event::Channel;\n",
        "event.rs": "use crate::address::Address;\n",
        "pipeline.rs": "use crate::store::Store;\n",
        "store.rs": "pub fn apply() { crate::report::count(); }\n",
        "report.rs": "use crate::{event::Channel, pipeline::Report};\n",
    }

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        write_crate(self.root, self.FILES)

    def tearDown(self):
        self.tmp.cleanup()

    def test_forbidden_cycle_fails(self):
        code, out = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn("cycle: address <-> event\n", out)
        self.assertIn("cycle: pipeline <-> report <-> store  (not allowed)", out)
        self.assertIn("not allowed: 1 cycle(s)", out)

    def test_allow_adds_a_set(self):
        code, out = run(self.root, "--allow", "report,store,pipeline")
        self.assertEqual(code, 0, out)
        self.assertNotIn("not allowed", out)

    def test_allow_is_exact(self):
        # a subset of the cycle is not the cycle
        code, _ = run(self.root, "--allow", "store,report")
        self.assertEqual(code, 1)

    def test_command_line_exit_codes(self):
        # the script itself, as a person runs it (--root: without it, it reads the
        # repository it sits in)
        bad = subprocess.run([sys.executable, SCRIPT, "--root", self.root],
                             capture_output=True, text=True)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn("not allowed", bad.stdout)
        with open(os.path.join(self.root, "src", "store.rs"), "w") as f:
            f.write("pub fn apply() {}\n")
        good = subprocess.run([sys.executable, SCRIPT, "--root", self.root],
                              capture_output=True, text=True)
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        self.assertEqual(good.stdout, "5 nodes, 5 edges\ncycle: address <-> event\n")


class RegistryCycle(unittest.TestCase):
    """The registry dispatches to its provider folders by their bare names; a provider
    that imports from the registry (`super::super::`) closes a cycle, which is not
    allowed."""

    def test_dispatch_and_import_back_is_a_cycle(self):
        with tempfile.TemporaryDirectory() as root:
            write_crate(root, {
                "lib.rs": "pub mod event; pub mod providers;\n",
                "event.rs": "pub struct Event;\n",
                "providers/mod.rs": """
                    pub mod twilio;
                    pub struct Answer;
                    pub fn dispatch() { twilio::parse(); }
                """,
                "providers/twilio/mod.rs": """
                    mod verify;
                    use crate::event::Event;
                    pub fn parse() { verify::check() }
                """,
                "providers/twilio/verify.rs": "pub fn check() -> super::super::Answer {}\n",
            })
            self.assertEqual(modgraph.build_graph(root).edges, [
                ("providers", "providers::twilio"),
                ("providers::twilio", "event"),
                ("providers::twilio", "providers"),
            ])
            code, out = run(root)
            self.assertEqual(code, 1)
            self.assertIn("cycle: providers <-> providers::twilio  (not allowed)", out)
            code, out = run(root, "--why", "providers::twilio", "providers")
            self.assertEqual(out, "src/providers/twilio/verify.rs:1: "
                                  "pub fn check() -> super::super::Answer {}\n")


class LayerRules(unittest.TestCase):
    """The layer rules: each edge or name that breaks one fails the check, naming the
    place; the same crate without it passes."""

    BASE = {
        "lib.rs": "pub mod event; pub mod store; pub mod server; pub mod classify;\n"
                  "pub mod time; pub mod pipeline; pub mod providers;\n",
        "event.rs": "pub struct Event;\n",
        "time.rs": "pub fn now_ms() -> u64 { 0 }\n",
        "store/mod.rs": 'pub struct Store;\nconst KEY: &str = "dnd:{t:0}:abc";\n',
        "server.rs": "use hyper::Request;\nuse crate::pipeline::Gateway;\n",
        "pipeline.rs": "pub struct Gateway;\nuse crate::store::Store;\n"
                       "use crate::providers::Provider;\n",
        "classify.rs": "use crate::event::Event;\n",
        "providers/mod.rs": "pub mod twilio;\npub enum Provider { Twilio }\n",
        "providers/twilio/mod.rs": "use crate::event::Event;\nuse crate::time::now_ms;\n",
    }

    # (file, the line written in it, what the check must say)
    BREAKS = [
        ("providers/twilio/mod.rs", "use crate::store::Store;",
         "layer: providers::twilio -> store (src/providers/twilio/mod.rs:3): "
         "a provider folder names only vocabulary"),
        ("server.rs", "fn f() { crate::providers::twilio::parse(); }",
         "layer: server -> providers::twilio (src/server.rs:3): the server names no provider"),
        ("classify.rs", "use crate::time::now_ms;",
         "layer: classify -> time (src/classify.rs:2): classification is pure"),
        ("time.rs", "use crate::store::Store;",
         "layer: time -> store (src/time.rs:2): the lower floors name nothing above them"),
        ("pipeline.rs", "use hyper::Response;",
         "layer: pipeline names hyper (src/pipeline.rs:4): only the server knows hyper"),
        ("pipeline.rs", "fn b() -> http_body_util::Full<u8> { todo!() }",
         "layer: pipeline names http_body_util (src/pipeline.rs:4)"),
        ("pipeline.rs", 'const K: &str = "dndlink:{x}:1";',
         "layer: src/pipeline.rs:4 writes a Redis key: only the store knows the key layout"),
        ("pipeline.rs", 'const K: &str = "dndsession:ab";',
         "layer: src/pipeline.rs:4 writes a Redis key: only the store knows the key layout"),
    ]

    def test_the_base_crate_passes(self):
        with tempfile.TemporaryDirectory() as root:
            write_crate(root, self.BASE)
            code, out = run(root)
            self.assertEqual(code, 0, out)
            self.assertNotIn("layer:", out)

    def test_each_break_fails_and_names_its_place(self):
        for path, line, said in self.BREAKS:
            with self.subTest(path=path, line=line), tempfile.TemporaryDirectory() as root:
                files = dict(self.BASE)
                files[path] = files[path] + line + "\n"
                write_crate(root, files)
                code, out = run(root)
                self.assertEqual(code, 1, out)
                self.assertIn(said, out)
                self.assertIn("not allowed: 1 layer rule(s) broken", out)

    def test_comments_and_tests_break_nothing(self):
        with tempfile.TemporaryDirectory() as root:
            files = dict(self.BASE)
            files["pipeline.rs"] += ('// "dnd:{x}:1" in a comment\n'
                                     "#[cfg(test)]\nmod tests { use crate::store::Store; }\n")
            files["providers/twilio/mod.rs"] += (
                "#[cfg(test)]\nmod tests { use crate::store::Store; }\n")
            write_crate(root, files)
            code, out = run(root)
            self.assertEqual(code, 0, out)


class Lexer(unittest.TestCase):
    """The tokenizer drops exactly what cannot name a module."""

    CASES = [
        # (source, the identifiers left)
        ("a // crate::z\nb", ["a", "b"]),
        ("a /* x /* crate::z */ y */ b", ["a", "b"]),
        ('a "crate::z \\" still" b', ["a", "b"]),
        ('a r##"crate::z "# still"## b', ["a", "b"]),
        ("a b'\"' c '\\'' d 'x' e", ["a", "c", "d", "e"]),
        ("fn f<'a>(x: &'a str) {}", ["fn", "f", "x", "str"]),
        ("let r#type = br\"crate::z\";", ["let", "type"]),
    ]

    def test_cases(self):
        for src, idents in self.CASES:
            with self.subTest(src=src):
                got = [t.text for t in modgraph.tokenize(src) if t.ident]
                self.assertEqual(got, idents)

    def test_lines_survive_multi_line_strings_and_comments(self):
        toks = modgraph.tokenize('"one\ntwo"\n/* three\n */ x')
        self.assertEqual([(t.text, t.line) for t in toks], [("x", 4)])


class TestCode(unittest.TestCase):
    """What `#[cfg(test)]` removes, and what it leaves."""

    CASES = [
        ("#[cfg(test)] mod tests { use crate::q; } fn keep() {}", ["fn", "keep"]),
        ("#[cfg(test)] use crate::q; use crate::keep;", ["use", "crate", "keep"]),
        ("#[cfg(test)]\n#[allow(dead_code)]\nfn f<I: Iterator<Item = u8>>() { crate::q::x() }"
         "\nfn keep() {}", ["fn", "keep"]),
        ("#[cfg(test)] const X: u8 = { 1 }; fn keep() {}", ["fn", "keep"]),
        ("struct S { #[cfg(test)] q: crate::q::Q, keep: u8 }", ["struct", "S", "keep", "u8"]),
        ("#[cfg(all(test, feature = \"x\"))] fn f() {} fn keep() {}", ["fn", "keep"]),
        ("#[cfg(not(test))] fn keep() {}", ["cfg", "not", "test", "fn", "keep"]),
        ("#[cfg(any(test, unix))] fn keep() {}", ["cfg", "any", "test", "unix", "fn", "keep"]),
        ("#![cfg(test)]\nuse crate::q;", []),
    ]

    def test_cases(self):
        for src, idents in self.CASES:
            with self.subTest(src=src):
                toks, _ = modgraph.strip_test_code(modgraph.tokenize(src))
                self.assertEqual([t.text for t in toks if t.ident], idents)

    def test_test_only_module_file_is_left_out(self):
        with tempfile.TemporaryDirectory() as root:
            write_crate(root, {
                "lib.rs": "pub mod store; pub mod q;\n",
                "q.rs": "",
                "store/mod.rs": "#[cfg(test)]\nmod tests;\n",
                "store/tests.rs": "use crate::q::X;\n",
            })
            self.assertEqual(modgraph.build_graph(root).edges, [])


if __name__ == "__main__":
    unittest.main()
