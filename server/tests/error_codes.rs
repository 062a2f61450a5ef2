//! Every `error_code` the server can send is in the one list (`dashboard_api::ErrorCode`) and in
//! the README; the sources spell no code as a string literal outside the list.
//!
//! `ApiError::new` and `DomainError::Invalid` take an `ErrorCode`, so the compiler keeps literal
//! codes out of those; what is left to check here is the text: Dropshot's own `HttpError`s (a
//! plain `Option<String>` code), the `error_code` field itself, and the README.

use dashboard_api::ErrorCode;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The README's list of codes: the lines after "Codes" up to the next blank line.
fn readme_codes_paragraph() -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme.find("\nCodes").expect("README.md has a paragraph starting with \"Codes\"");
    let rest = &readme[start + 1..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
}

/// The backquoted words of `text` that look like error codes (`snake_case`, lower case).
fn code_shaped(text: &str) -> Vec<String> {
    let pattern = regex::Regex::new(r"`([a-z]+(?:_[a-z]+)*)`").unwrap();
    pattern.captures_iter(text).map(|c| c[1].to_string()).collect()
}

#[test]
fn every_code_is_in_the_readme() {
    let paragraph = readme_codes_paragraph();
    let missing: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .filter(|code| !paragraph.contains(&format!("`{code}`")))
        .collect();
    assert!(missing.is_empty(), "codes missing from the README's list of codes: {missing:?}");
}

#[test]
fn the_readme_lists_no_other_code() {
    // Words of the error body that the list may mention, and are not codes.
    let fields = ["error_code", "message", "field", "retry_after_seconds"];
    let unknown: Vec<String> = code_shaped(&readme_codes_paragraph())
        .into_iter()
        .filter(|word| !fields.contains(&word.as_str()) && ErrorCode::from_code(word).is_none())
        .collect();
    assert!(unknown.is_empty(), "the README lists codes that ErrorCode does not: {unknown:?}");
}

#[test]
fn no_literal_code_outside_the_list() {
    let root = workspace();
    let list = root.join("api/src/error.rs");
    // A code-shaped literal where Dropshot's `HttpError` takes its code, or assigned to an
    // `error_code` field, whether or not the code is one of the list.
    let positions = regex::Regex::new(
        r#"(?s)Some\(\s*"[a-z]+(?:_[a-z]+)*"\s*\.\s*(?:into|to_string|to_owned)\(\)|Some\(\s*String::from\(\s*"|error_code\s*[:=]\s*[^;,]*?""#,
    )
    .unwrap();
    let mut found = Vec::new();
    for file in sources(&root.join("server/src")).into_iter().chain(sources(&root.join("api/src")))
    {
        if file == list {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        for code in ErrorCode::ALL {
            let literal = format!("\"{code}\"");
            for (line, _) in text.lines().enumerate().filter(|(_, l)| l.contains(&literal)) {
                found.push(format!("{name}:{}: {literal}", line + 1));
            }
        }
        for hit in positions.find_iter(&text) {
            let line = text[..hit.start()].matches('\n').count() + 1;
            found.push(format!("{name}:{line}: {}", hit.as_str()));
        }
    }
    assert!(found.is_empty(), "use dashboard_api::ErrorCode instead of: {found:#?}");
}
