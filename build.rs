//! Embeds the provider fixture folders (`tests/providers/<name>/`) for `dndgate
//! simulate`, which replays their named events: the same payloads and signing tables the
//! tests send, in the binary, so a user can replay them without a source checkout.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/providers");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut folders: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    folders.retain(|p| p.is_dir());
    folders.sort();
    let mut out = String::from(
        "/// Every fixture folder: its name and its files (name, text), vectors left out.\n\
         pub static FOLDERS: &[(&str, &[(&str, &str)])] = &[\n",
    );
    for folder in folders {
        let name = folder.file_name().unwrap().to_string_lossy().to_string();
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "vectors.json"))
            .collect();
        files.sort();
        writeln!(out, "    ({name:?}, &[").unwrap();
        for file in files {
            let file_name = file.file_name().unwrap().to_string_lossy().to_string();
            writeln!(
                out,
                "        ({file_name:?}, include_str!({:?})),",
                file.display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "    ]),").unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("fixtures.rs");
    std::fs::write(dest, out).unwrap();
}
