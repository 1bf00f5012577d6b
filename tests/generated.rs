//! The generated sources cannot drift from their generator: `module/tools/gen-abi-tables.py`,
//! run on the cryptoki-sys bindings the build uses, must reproduce the committed function lists,
//! stubs and mechanism names byte for byte (so a function implemented by hand in `abi/` has had
//! its stub regenerated away, and nobody edited a generated file by hand).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files the generator writes, relative to `module/src/`.
const GENERATED: [&str; 3] = ["abi/interface_tables.rs", "abi/unsupported.rs", "mechanisms/names.rs"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// cryptoki-sys's x86_64 Linux bindings (the ones the tables were generated from), found through
/// the manifest path `cargo metadata` resolves for the package.
fn bindings() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", tessera_tests::show(&out));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let manifest = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "cryptoki-sys")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("cargo metadata lists cryptoki-sys");
    let path = Path::new(manifest).parent().unwrap().join("src/bindings/x86_64-unknown-linux-gnu.rs");
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

#[test]
fn generated_abi_tables_match_generator() {
    if !tessera_tests::have("python3") {
        println!("SKIP generated_abi_tables_match_generator: python3 is not on the PATH");
        return;
    }
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("python3")
        .arg(root().join("module/tools/gen-abi-tables.py"))
        .arg("--out")
        .arg(out_dir.path())
        .arg(bindings())
        .output()
        .expect("run gen-abi-tables.py");
    assert!(out.status.success(), "gen-abi-tables.py: {}", tessera_tests::show(&out));
    let stale: Vec<String> = GENERATED
        .iter()
        .filter(|rel| {
            let fresh = std::fs::read(out_dir.path().join(rel)).unwrap_or_else(|e| panic!("generated {rel}: {e}"));
            let committed = std::fs::read(root().join("module/src").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            fresh != committed
        })
        .map(|rel| format!("module/src/{rel}"))
        .collect();
    assert!(
        stale.is_empty(),
        "not what module/tools/gen-abi-tables.py generates (run `python3 module/tools/gen-abi-tables.py`): {}",
        stale.join(", ")
    );
}
