//! The modules of `src/` import only from the floors below them, as `src/lib.rs` lists them:
//! no import runs back up and there is no circle. Each `crate::<module>` path in a module's
//! files (its unit tests left out) must name a module on a lower floor or itself.

use std::path::Path;

/// Floor by floor, lowest first, as in src/lib.rs; modules on one line may not import each
/// other unless listed in that order (earlier ones lower).
const FLOORS: &[&str] = &[
    "atomic", "stats", "device", "kernels", "model", "data", "config", "run", "train", "plot",
    "explorer", "export", "report", "cli", "error", "commands",
];

fn rank(module: &str) -> usize {
    FLOORS
        .iter()
        .position(|m| *m == module)
        .unwrap_or_else(|| panic!("module {module} is not in FLOORS; add it at its floor"))
}

/// The code of a file without its `#[cfg(test)] mod tests` block (tests may reach anywhere).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

fn modules_named(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_import_runs_down_the_floors_of_lib_rs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let here = rank(&module);
        let text = std::fs::read_to_string(file).unwrap();
        for target in modules_named(without_tests(&text)) {
            if target != module && rank(&target) > here {
                upward.push(format!("{} imports crate::{target}", relative.display()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run up a floor:\n{}",
        upward.join("\n")
    );
    // lib.rs declares the same modules.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for m in FLOORS {
        assert!(
            lib.contains(&format!("pub mod {m};")),
            "lib.rs lacks pub mod {m}"
        );
    }
}
