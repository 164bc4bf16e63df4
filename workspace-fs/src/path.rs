//! Path validation: the single set of rules shared by this crate, the server and the proptests.

use crate::FsError;

/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted single name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Deepest accepted path, in components.
pub const MAX_DEPTH: usize = 32;
/// Prefix of the crate's own temporary files; such names are hidden from listings and reserved.
pub const TEMP_PREFIX: &str = ".campus-tmp-";

/// True for characters that may never appear in a name: control characters (C0, DEL, C1,
/// including NUL and newline) and the Unicode bidi embedding/override/isolate controls that can
/// make a name display differently from what it is.
fn forbidden_char(c: char) -> bool {
    c.is_control()
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Splits a workspace-relative path into its components, or refuses it with `InvalidPath`.
///
/// `""` is the workspace root and yields no components. Refused: absolute paths, `.` and `..`
/// components, empty components (`a//b`, a trailing `/`), backslashes, control characters
/// (NUL, newline, ...), bidi override characters, names over 255 bytes, paths over 4096 bytes
/// or 32 levels, and names starting with the reserved temporary-file prefix. The input is the
/// already URL-decoded path: `%2e%2e` arriving here is a literal (valid) name.
pub fn validate_path(p: &str) -> Result<Vec<&str>, FsError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    if p.len() > MAX_PATH_BYTES {
        return Err(FsError::InvalidPath(format!(
            "path longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    if p.starts_with('/') {
        return Err(FsError::InvalidPath(
            "absolute paths are not allowed".into(),
        ));
    }
    if p.contains('\\') {
        return Err(FsError::InvalidPath("backslashes are not allowed".into()));
    }
    if p.chars().any(forbidden_char) {
        return Err(FsError::InvalidPath(
            "control or bidi-override characters are not allowed".into(),
        ));
    }
    let comps: Vec<&str> = p.split('/').collect();
    if comps.len() > MAX_DEPTH {
        return Err(FsError::InvalidPath(format!(
            "path deeper than {MAX_DEPTH} levels"
        )));
    }
    for c in &comps {
        if c.is_empty() {
            return Err(FsError::InvalidPath("empty path component".into()));
        }
        if *c == "." || *c == ".." {
            return Err(FsError::InvalidPath(
                "'.' and '..' components are not allowed".into(),
            ));
        }
        if c.len() > MAX_NAME_BYTES {
            return Err(FsError::InvalidPath(format!(
                "name longer than {MAX_NAME_BYTES} bytes"
            )));
        }
        if c.starts_with(TEMP_PREFIX) {
            return Err(FsError::InvalidPath(format!(
                "names starting with {TEMP_PREFIX} are reserved"
            )));
        }
    }
    Ok(comps)
}

/// Like [`validate_path`] but also refuses the root (`""`), for operations on an entry.
pub(crate) fn validate_entry_path(p: &str) -> Result<Vec<&str>, FsError> {
    let comps = validate_path(p)?;
    if comps.is_empty() {
        return Err(FsError::InvalidPath(
            "the workspace root cannot be used here".into(),
        ));
    }
    Ok(comps)
}

/// True for names this crate created as temporaries (never listed, never counted).
pub(crate) fn is_temp_name(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(p: &str) {
        assert!(
            matches!(validate_path(p), Err(FsError::InvalidPath(_))),
            "{p:?} should be refused"
        );
    }

    #[test]
    fn accepts_ordinary_paths() {
        assert_eq!(validate_path("").unwrap(), Vec::<&str>::new());
        assert_eq!(validate_path("a").unwrap(), vec!["a"]);
        assert_eq!(
            validate_path("src/main.py").unwrap(),
            vec!["src", "main.py"]
        );
        assert_eq!(
            validate_path(".hidden/..x/x..").unwrap(),
            vec![".hidden", "..x", "x.."]
        );
        // After URL decoding `%2e%2e` is a literal name, harmless on disk.
        assert_eq!(validate_path("%2e%2e/x").unwrap(), vec!["%2e%2e", "x"]);
        assert_eq!(validate_path("..%2fx").unwrap(), vec!["..%2fx"]);
        assert!(validate_path("données/ünïcode 名前.txt").is_ok());
    }

    #[test]
    fn refuses_traversal_and_odd_shapes() {
        for p in [
            "..",
            "../x",
            "a/../../x",
            "a/..",
            "./a",
            "a/./b",
            ".",
            "/etc/passwd",
            "/",
            "a//b",
            "a/",
            "//a",
            "a\\b",
            "..\\x",
            "\\\\server\\share",
        ] {
            bad(p);
        }
    }

    #[test]
    fn refuses_control_and_bidi_characters() {
        for p in [
            "a\0b",
            "a\nb",
            "a\rb",
            "a\tb",
            "\u{7f}",
            "\u{85}",
            "evil\u{202E}txt.py",
            "x\u{2066}y",
            "x\u{2069}",
            "\u{202A}",
        ] {
            bad(p);
        }
    }

    #[test]
    fn refuses_overlong_names_paths_and_depth() {
        let name = "n".repeat(MAX_NAME_BYTES);
        assert!(validate_path(&name).is_ok());
        bad(&"n".repeat(MAX_NAME_BYTES + 1));
        // Multi-byte: 128 two-byte chars = 256 bytes.
        bad(&"é".repeat(128));
        let deep = vec!["d"; MAX_DEPTH].join("/");
        assert!(validate_path(&deep).is_ok());
        bad(&vec!["d"; MAX_DEPTH + 1].join("/"));
        let long = vec!["x".repeat(200); 20].join("/");
        assert!(long.len() < MAX_PATH_BYTES && validate_path(&long).is_ok());
        let longer = vec!["x".repeat(250); 17].join("/");
        assert!(longer.len() > MAX_PATH_BYTES);
        bad(&longer);
    }

    #[test]
    fn refuses_reserved_temp_prefix() {
        bad(".campus-tmp-123");
        bad("a/.campus-tmp-x");
        assert!(validate_path(".campus-tmpx").is_ok());
    }
}
