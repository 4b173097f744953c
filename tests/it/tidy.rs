//! Project rules checked as tests: std only, no unsafe.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn dependencies_stay_empty() {
    let manifest = read("Cargo.toml");
    let section = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] section");
    let body = section.split("\n[").next().unwrap();
    let entries: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert!(
        entries.is_empty(),
        "tinysse is std only, but [dependencies] has {entries:?}"
    );
}

/// Every `.rs` file under `dir`, in subfolders too.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn no_unsafe_code() {
    let files = rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(files.len() > 10, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let offending = text
            .lines()
            .filter(|line| line.contains("unsafe") && !line.contains("forbid(unsafe_code)"))
            .filter(|line| {
                let code = line.split("//").next().unwrap_or("");
                code.contains("unsafe ") || code.contains("unsafe{")
            });
        assert_eq!(offending.count(), 0, "unsafe in {}", path.display());
    }
    assert!(read("src/lib.rs").contains("#![forbid(unsafe_code)]"));
}

/// `Cargo.toml` says `MIT OR Apache-2.0`: both texts ship with the crate
/// (`cargo package` includes them: `exclude` does not name them).
#[test]
fn license_files_match_the_manifest() {
    let manifest = read("Cargo.toml");
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
    let mit = read("LICENSE-MIT");
    assert!(mit.starts_with("MIT License\n\nCopyright (c) 2026 The tinysse developers\n"));
    assert!(mit.contains("THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND"));
    let apache = read("LICENSE-APACHE");
    assert!(
        apache.contains("Apache License\n                           Version 2.0, January 2004")
    );
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));
    assert!(
        apache.len() > 11_000,
        "the full text: {} bytes",
        apache.len()
    );
    let exclude = manifest
        .lines()
        .find(|line| line.starts_with("exclude"))
        .unwrap_or("");
    assert!(!exclude.contains("LICENSE"), "{exclude}");
}
