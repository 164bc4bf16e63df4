//! Path validation: the single set of rules shared by this crate, the server and the proptests.

use std::borrow::Cow;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

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

/// Characters that render as nothing (or as a blank) and so make two different names look
/// identical: zero-width spaces and joiners, format characters (general category Cf: soft
/// hyphen, word joiner, byte-order mark, invisible operators, tags, ...), variation
/// selectors, the Hangul fillers and the line/paragraph separators.
fn invisible_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{110BD}' | '\u{110CD}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Look-alikes of the separators `/` and `\` that have no compatibility decomposition
/// (so [`lookalike_of`]'s NFKC rule does not see them).
const SLASH_LOOKALIKES: &[char] = &[
    '\u{2044}', // FRACTION SLASH
    '\u{2215}', // DIVISION SLASH
    '\u{2216}', // SET MINUS
    '\u{2571}', // BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT
    '\u{2572}', // BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT
    '\u{27CB}', // MATHEMATICAL RISING DIAGONAL
    '\u{27CD}', // MATHEMATICAL FALLING DIAGONAL
    '\u{29F5}', // REVERSE SOLIDUS OPERATOR
    '\u{29F8}', // BIG SOLIDUS
    '\u{29F9}', // BIG REVERSE SOLIDUS
    '\u{3033}', // VERTICAL KANA REPEAT MARK UPPER HALF
];

/// For a non-ASCII character that passes for ASCII punctuation or a space (fullwidth `．`
/// and `／`, small `﹒`, the dot leader `․`, no-break and ideographic spaces, the slash
/// look-alikes above): the ASCII text it imitates. Letters and digits are not refused
/// (fullwidth digits are ordinary in CJK names; a name only *containing* them cannot pose
/// as a path separator or an extension dot).
fn lookalike_of(c: char) -> Option<String> {
    if c.is_ascii() {
        return None;
    }
    if SLASH_LOOKALIKES.contains(&c) {
        return Some(
            if matches!(
                c,
                '\u{2216}' | '\u{2572}' | '\u{27CD}' | '\u{29F5}' | '\u{29F9}'
            ) {
                "\\".into()
            } else {
                "/".into()
            },
        );
    }
    let compat: String = std::iter::once(c).nfkc().collect();
    (!compat.is_empty() && compat.chars().all(|k| k.is_ascii_punctuation() || k == ' '))
        .then_some(compat)
}

/// The path in Unicode Normalization Form C: `café` typed as `e` + U+0301 (NFD, what macOS
/// file pickers send) and as U+00E9 name the same file. Every public operation of this crate
/// normalizes its paths with this before [`validate_path`] (which refuses non-NFC input, so
/// a caller that skipped it fails loudly instead of creating a twin).
pub fn normalize_path(p: &str) -> Cow<'_, str> {
    match is_nfc_quick(p.chars()) {
        IsNormalized::Yes => Cow::Borrowed(p),
        _ => {
            let n: String = p.nfc().collect();
            if n == p {
                Cow::Borrowed(p)
            } else {
                Cow::Owned(n)
            }
        }
    }
}

/// Splits a workspace-relative path into its components, or refuses it with `InvalidPath`.
///
/// `""` is the workspace root and yields no components. Refused: absolute paths, `.` and `..`
/// components, empty components (`a//b`, a trailing `/`), backslashes, control characters
/// (NUL, newline, ...), bidi override characters, names over 255 bytes, paths over 4096 bytes
/// or 32 levels, names starting with the reserved temporary-file prefix, paths not in NFC
/// (see [`normalize_path`]), invisible characters (zero-width, format characters) and
/// look-alikes of ASCII punctuation, spaces and separators (fullwidth `．` `／`, U+2215, ...).
/// The input is the already URL-decoded path: `%2e%2e` arriving here is a literal (valid)
/// name.
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
    if let Some(c) = p.chars().find(|&c| invisible_char(c)) {
        return Err(FsError::InvalidPath(format!(
            "names may not contain invisible characters (found U+{:04X}); remove it",
            u32::from(c)
        )));
    }
    if let Some((c, ascii)) = p.chars().find_map(|c| lookalike_of(c).map(|a| (c, a))) {
        return Err(FsError::InvalidPath(format!(
            "names may not contain {c:?} (U+{:04X}), which looks like {ascii:?} but is not; type the ASCII character instead",
            u32::from(c)
        )));
    }
    if normalize_path(p) != p {
        return Err(FsError::InvalidPath(
            "the path is not in Unicode normalization form C (normalize it first)".into(),
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
    fn normalizes_to_nfc() {
        let nfd = "cafe\u{301}.py";
        assert_eq!(normalize_path(nfd), "caf\u{e9}.py");
        assert!(matches!(normalize_path("caf\u{e9}.py"), Cow::Borrowed(_)));
        assert!(matches!(normalize_path("plain/ascii.py"), Cow::Borrowed(_)));
        // Hangul typed as jamo composes into syllables.
        assert_eq!(normalize_path("\u{1100}\u{1161}.txt"), "\u{AC00}.txt");
        // validate_path itself refuses what was not normalized.
        bad(nfd);
        assert!(validate_path(&normalize_path(nfd)).is_ok());
    }

    #[test]
    fn refuses_invisible_characters() {
        for p in [
            "ma\u{200B}in.py",
            "main\u{200C}.py",
            "main\u{200D}.py",
            "\u{FEFF}main.py",
            "soft\u{AD}hyphen",
            "word\u{2060}joiner",
            "a/\u{2061}b",
            "emoji\u{FE0F}",
            "tag\u{E0041}",
            "filler\u{3164}",
            "lrm\u{200E}.py",
            "line\u{2028}sep",
        ] {
            bad(p);
            let e = validate_path(p).unwrap_err().to_string();
            assert!(e.contains("invisible characters"), "{p:?}: {e}");
        }
    }

    #[test]
    fn refuses_lookalike_separators_dots_and_spaces() {
        for (p, ascii) in [
            ("main\u{FF0E}py", "."),
            ("main\u{FE52}py", "."),
            ("main\u{2024}py", "."),
            ("a\u{FF0F}b", "/"),
            ("a\u{2215}b", "/"),
            ("a\u{2044}b", "/"),
            ("a\u{29F8}b", "/"),
            ("a\u{FF3C}b", "\\"),
            ("a\u{2216}b", "\\"),
            ("a\u{2025}b", ".."),
            ("no\u{A0}break", " "),
            ("ideo\u{3000}space", " "),
            ("x\u{FF1A}y", ":"),
        ] {
            let e = validate_path(p).unwrap_err().to_string();
            assert!(
                e.contains("looks like") && e.contains(&format!("{ascii:?}")),
                "{p:?}: {e}"
            );
        }
        // Ordinary non-ASCII names stay valid, fullwidth digits and letters included.
        for p in [
            "données/ünïcode 名前.txt",
            "日本語/ファイル１.py",
            "ｐｒｏｊｅｃｔ",
            "Ελληνικά.md",
            "l·l.txt",
            "中文。txt",
        ] {
            assert!(validate_path(p).is_ok(), "{p:?}");
        }
    }

    #[test]
    fn refuses_reserved_temp_prefix() {
        bad(".campus-tmp-123");
        bad("a/.campus-tmp-x");
        assert!(validate_path(".campus-tmpx").is_ok());
    }
}
