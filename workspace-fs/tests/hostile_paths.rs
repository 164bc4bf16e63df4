//! Traversal, symlink and bad-name attacks against the library, plus path proptests.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;
use proptest::prelude::*;
use workspace_fs::{validate_path, EntryKind, FsError, Precondition};

const TRAVERSALS: &[&str] = &[
    "../x",
    "a/../../x",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "/x",
    "a\\b",
    "..\\x",
    "a//b",
    "./x",
    "a/./b",
    "a/",
    "",
];

#[test]
fn traversal_is_refused_by_every_operation() {
    let f = fixture();
    f.ws.write("a.txt", b"hi", Precondition::CreateOnly)
        .unwrap();
    for p in TRAVERSALS {
        assert_invalid(f.ws.write(p, b"x", Precondition::Overwrite));
        assert_invalid(f.ws.read(p));
        assert_invalid(f.ws.open_read(p));
        assert_invalid(f.ws.mkdir(p));
        assert_invalid(f.ws.delete(p));
        assert_invalid(f.ws.rename("a.txt", p, true));
        assert_invalid(f.ws.rename(p, "b.txt", true));
        assert_invalid(f.ws.copy("a.txt", p));
        assert_invalid(f.ws.copy(p, "c.txt"));
        assert_invalid(f.ws.list_versions(p));
        assert_invalid(f.ws.begin_write(p, Precondition::Overwrite, Some(1)));
        if !p.is_empty() {
            assert_invalid(f.ws.stat(p));
            assert_invalid(f.ws.list(p, false));
        }
    }
    // Nothing was created next to the tree, and the tree holds only a.txt.
    assert_eq!(raw_names(&f.dir.path().join("tree")), vec!["alice"]);
    assert_eq!(raw_names(&f.tree()), vec!["a.txt"]);
    assert_eq!(f.ws.read("a.txt").unwrap().0, b"hi");
}

#[test]
fn url_encoded_dots_are_literal_names() {
    let f = fixture();
    // What the server sees if a client sends `%2e%2e` that was decoded once is `..` (refused);
    // if it arrives still encoded it is just a strange but harmless name inside the tree.
    assert_invalid(f.ws.write("..", b"x", Precondition::CreateOnly));
    f.ws.write("%2e%2e", b"x", Precondition::CreateOnly)
        .unwrap();
    f.ws.write("..%2fx", b"y", Precondition::CreateOnly)
        .unwrap();
    assert_eq!(raw_names(&f.tree()), vec!["%2e%2e", "..%2fx"]);
    assert_eq!(f.ws.read("..%2fx").unwrap().0, b"y");
}

#[test]
fn control_and_bidi_names_are_refused() {
    let f = fixture();
    for p in [
        "a\0b",
        "line\nbreak.py",
        "cr\r.py",
        "tab\t",
        "evil\u{202E}yp.exe",
        "iso\u{2066}x",
    ] {
        assert_invalid(f.ws.write(p, b"x", Precondition::CreateOnly));
        assert_invalid(f.ws.mkdir(p));
    }
    assert_invalid(f.ws.write(&"n".repeat(256), b"x", Precondition::CreateOnly));
    let deep = vec!["d"; 33].join("/");
    assert_invalid(f.ws.write(&deep, b"x", Precondition::CreateOnly));
    assert_invalid(f.ws.write(".campus-tmp-sneaky", b"x", Precondition::CreateOnly));
    assert!(raw_names(&f.tree()).is_empty());
}

/// Plants `link -> target` inside alice's tree.
fn plant(f: &Fixture, link: &str, target: &Path) {
    symlink(target, f.tree().join(link)).unwrap();
}

#[test]
fn symlink_to_etc_is_listed_but_never_followed() {
    let f = fixture();
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    f.ws.write("a.txt", b"mine", Precondition::CreateOnly)
        .unwrap();
    plant(&f, "etc", Path::new("/etc"));
    plant(&f, "passwd", Path::new("/etc/passwd"));

    let list = f.ws.list("", true).unwrap();
    let kinds: Vec<(&str, EntryKind)> = list.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("a.txt", EntryKind::File),
            ("etc", EntryKind::Symlink),
            ("passwd", EntryKind::Symlink)
        ]
    );
    assert!(list
        .iter()
        .filter(|e| e.kind == EntryKind::Symlink)
        .all(|e| e.version.is_none()));
    assert_eq!(f.ws.stat("passwd").unwrap().kind, EntryKind::Symlink);

    assert_invalid(f.ws.list("etc", false));
    assert_invalid(f.ws.read("passwd"));
    assert_invalid(f.ws.open_read("passwd"));
    assert_invalid(f.ws.read("etc/passwd"));
    assert_invalid(f.ws.stat("etc/passwd"));
    assert_invalid(f.ws.write("passwd", b"pwned", Precondition::Overwrite));
    assert_invalid(f.ws.write("etc/campus-evil", b"pwned", Precondition::Overwrite));
    assert_invalid(f.ws.begin_write("etc/campus-evil", Precondition::Overwrite, None));
    assert_invalid(f.ws.mkdir("etc/campus-evil-dir"));
    assert_invalid(f.ws.rename("a.txt", "passwd", true));
    assert_invalid(f.ws.rename("a.txt", "etc/campus-evil", false));
    assert_invalid(f.ws.copy("passwd", "copy"));
    assert_invalid(f.ws.copy("etc", "copy"));
    assert_invalid(f.ws.copy("a.txt", "etc/campus-evil"));
    assert_invalid(f.ws.delete("etc/passwd"));

    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
    assert!(!Path::new("/etc/campus-evil").exists());
    assert!(!Path::new("/etc/campus-evil-dir").exists());
    assert_eq!(f.ws.read("a.txt").unwrap().0, b"mine");

    // Deleting the link itself is allowed and leaves the target alone.
    f.ws.delete("passwd").unwrap();
    f.ws.delete("etc").unwrap();
    assert!(Path::new("/etc/passwd").exists());
    assert_eq!(f.ws.list("", false).unwrap().len(), 1);
}

#[test]
fn symlink_to_another_workspace_is_never_followed() {
    let f = fixture();
    let bob = f.reg.open("bob", None).unwrap();
    bob.write("secret.txt", b"bob's secret", Precondition::CreateOnly)
        .unwrap();
    bob.mkdir("dir").unwrap();
    let bob_tree = f.reg.tree_path("bob").unwrap();
    plant(&f, "bob_abs", &bob_tree);
    plant(&f, "bob_rel", Path::new("../bob"));
    plant(&f, "secret", &bob_tree.join("secret.txt"));
    f.ws.write("a.txt", b"alice", Precondition::CreateOnly)
        .unwrap();

    for link in ["bob_abs", "bob_rel"] {
        assert_invalid(f.ws.list(link, true));
        assert_invalid(f.ws.read(&format!("{link}/secret.txt")));
        assert_invalid(f.ws.write(&format!("{link}/secret.txt"), b"x", Precondition::Overwrite));
        assert_invalid(f.ws.write(
            &format!("{link}/dir/new.txt"),
            b"x",
            Precondition::Overwrite,
        ));
        assert_invalid(f.ws.rename("a.txt", &format!("{link}/secret.txt"), true));
        assert_invalid(f.ws.delete(&format!("{link}/secret.txt")));
        assert_invalid(f.ws.copy(&format!("{link}/secret.txt"), "stolen.txt"));
    }
    assert_invalid(f.ws.read("secret"));
    assert_invalid(f.ws.write("secret", b"x", Precondition::Overwrite));
    assert_invalid(f.ws.rename("a.txt", "secret", true));
    // A version restore onto a path that became a link refuses too.
    f.ws.write("h.txt", b"v1", Precondition::CreateOnly)
        .unwrap();
    f.ws.write("h.txt", b"v2", Precondition::Overwrite).unwrap();
    let old = f.ws.list_versions("h.txt").unwrap()[0].version.clone();
    std::fs::remove_file(f.tree().join("h.txt")).unwrap();
    plant(&f, "h.txt", &bob_tree.join("secret.txt"));
    assert_invalid(f.ws.restore_version("h.txt", &old));
    std::fs::remove_file(f.tree().join("h.txt")).unwrap();

    // The recursive listing does not descend into links.
    let paths: Vec<String> =
        f.ws.list("", true)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
    assert_eq!(paths, vec!["a.txt", "bob_abs", "bob_rel", "secret"]);
    assert_eq!(bob.read("secret.txt").unwrap().0, b"bob's secret");
    assert_eq!(raw_names(&bob_tree), vec!["dir", "secret.txt"]);
    assert!(raw_names(&bob_tree.join("dir")).is_empty());
    assert!(!f.tree().join("stolen.txt").exists());
}

#[test]
fn symlinks_inside_the_tree_are_not_followed_either() {
    let f = fixture();
    f.ws.write("real/f.txt", b"x", Precondition::CreateOnly)
        .unwrap();
    plant(&f, "alias", Path::new("real"));
    assert_invalid(f.ws.read("alias/f.txt"));
    assert_invalid(f.ws.write("alias/g.txt", b"y", Precondition::CreateOnly));
    assert!(!f.tree().join("real/g.txt").exists());
}

#[test]
fn write_through_a_deep_symlinked_directory_creates_nothing_outside() {
    let f = fixture();
    let outside = tempfile::tempdir().unwrap();
    f.ws.mkdir("a").unwrap();
    symlink(outside.path(), f.tree().join("a/b")).unwrap();
    assert_invalid(f.ws.write("a/b/c/d.txt", b"x", Precondition::Overwrite));
    assert_invalid(f.ws.mkdir("a/b/c"));
    assert_invalid(f.ws.rename("a", "a/b/a2", false));
    assert!(raw_names(outside.path()).is_empty());
    // The error names the culprit.
    match f.ws.write("a/b/c/d.txt", b"x", Precondition::Overwrite) {
        Err(FsError::InvalidPath(msg)) => assert!(
            msg.contains("a/b") && msg.contains("symbolic link"),
            "{msg}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fifo_planted_by_student_code_does_not_hang_reads() {
    let f = fixture();
    let st = std::process::Command::new("mkfifo")
        .arg(f.tree().join("pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    assert_invalid(f.ws.read("pipe"));
    assert_invalid(f.ws.copy("pipe", "x"));
    // Listed as nothing (not a file, dir or link), counted after a rescan.
    assert!(f.ws.list("", false).unwrap().is_empty());
    assert_eq!(f.ws.rescan().unwrap().entries, 1);
}

/// Path pieces that mix valid names with every kind of hostile component.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("%2e%2e".to_string()),
        Just("a\\b".to_string()),
        Just("x\0y".to_string()),
        Just("n\nl".to_string()),
        Just("\u{202E}rtl".to_string()),
        Just("/".to_string()),
        Just(".campus-tmp-1".to_string()),
        "[a-zA-Z0-9 ._-]{1,12}",
        "\\PC{1,6}",
    ]
}

fn hostile_path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(piece(), 1..6)).prop_map(|(abs, parts)| {
        let p = parts.join("/");
        if abs {
            format!("/{p}")
        } else {
            p
        }
    })
}

proptest! {
    #[test]
    fn validate_path_accepts_only_clean_relative_components(p in hostile_path()) {
        if let Ok(comps) = validate_path(&p) {
            prop_assert!(!p.starts_with('/'));
            prop_assert_eq!(comps.join("/"), p.clone());
            for c in comps {
                prop_assert!(c != ".." && c != "." && !c.is_empty());
                prop_assert!(!c.contains('/') && !c.contains('\\') && !c.contains('\0'));
                prop_assert!(!c.chars().any(char::is_control));
                prop_assert!(c.len() <= 255);
            }
        }
    }

    #[test]
    fn validate_path_never_accepts_dotdot(parts in prop::collection::vec("[a-z.]{0,3}", 1..8)) {
        let p = parts.join("/");
        if let Ok(comps) = validate_path(&p) {
            prop_assert!(comps.iter().all(|c| *c != ".."));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn writes_are_refused_or_land_strictly_beneath_the_root(p in hostile_path()) {
        let f = fixture();
        let root = f.tree().canonicalize().unwrap();
        match f.ws.write(&p, b"x", Precondition::Overwrite) {
            Ok(out) => {
                let host = root.join(&out.entry.path).canonicalize().unwrap();
                prop_assert!(host.starts_with(&root) && host != root);
                prop_assert_eq!(f.ws.read(&p).unwrap().0, b"x".to_vec());
            }
            Err(FsError::InvalidPath(_)) => {
                prop_assert!(raw_names(&root).is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected error {e:?} for {p:?}"),
        }
        // Nothing ever appears beside the workspace trees.
        prop_assert_eq!(raw_names(&f.dir.path().join("tree")), vec!["alice".to_string()]);
    }
}

#[test]
fn nfc_and_nfd_names_are_the_same_file() {
    let f = fixture();
    let nfc = "caf\u{e9}.py";
    let nfd = "cafe\u{301}.py";
    assert_ne!(nfc.as_bytes(), nfd.as_bytes());
    // Created under the decomposed spelling (what macOS pickers send)...
    f.ws.write(nfd, b"print('nfd')", Precondition::CreateOnly)
        .unwrap();
    // ...it exists under the composed one, and creating that is a conflict, not a twin.
    assert_eq!(f.ws.read(nfc).unwrap().0, b"print('nfd')");
    assert!(matches!(
        f.ws.write(nfc, b"twin", Precondition::CreateOnly),
        Err(FsError::Conflict { .. })
    ));
    f.ws.write(nfc, b"print('nfc')", Precondition::Overwrite)
        .unwrap();
    assert_eq!(f.ws.read(nfd).unwrap().0, b"print('nfc')");
    // One entry on disk, named in NFC, and the listing says so.
    assert_eq!(raw_names(&f.tree()), vec![nfc.to_string()]);
    let listed: Vec<String> =
        f.ws.list("", true)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
    assert_eq!(listed, vec![nfc.to_string()]);
    assert_eq!(f.ws.stat(nfd).unwrap().path, nfc);
    // Folders and every other operation take either spelling.
    let dir_nfd = "re\u{301}sume\u{301}";
    f.ws.mkdir(dir_nfd).unwrap();
    f.ws.rename(nfd, &format!("{dir_nfd}/{nfd}"), false)
        .unwrap();
    assert_eq!(
        f.ws.read(&format!("r\u{e9}sum\u{e9}/{nfc}")).unwrap().0,
        b"print('nfc')"
    );
    f.ws.copy(&format!("{dir_nfd}/{nfc}"), nfd).unwrap();
    assert_eq!(f.ws.list_versions(nfc).unwrap().len(), 0);
    f.ws.delete(nfd).unwrap();
    assert!(matches!(f.ws.stat(nfc), Err(FsError::NotFound(_))));
    assert_eq!(raw_names(&f.tree()), vec!["r\u{e9}sum\u{e9}".to_string()]);
}

#[test]
fn invisible_and_lookalike_names_are_refused_by_every_operation() {
    let f = fixture();
    f.ws.write("main.py", b"x", Precondition::CreateOnly)
        .unwrap();
    for p in [
        "ma\u{200B}in.py",   // zero-width space: a second "main.py"
        "main.py\u{FEFF}",   // byte-order mark
        "main\u{FF0E}py",    // fullwidth full stop
        "src\u{FF0F}x.py",   // fullwidth solidus: "src/x.py" that is no folder
        "src\u{2215}x.py",   // division slash
        "main\u{2060}.py",   // word joiner
        "main\u{A0}copy.py", // no-break space
    ] {
        let e = f.ws.write(p, b"y", Precondition::CreateOnly).unwrap_err();
        assert!(
            matches!(&e, FsError::InvalidPath(m) if m.contains("invisible") || m.contains("looks like")),
            "{p:?}: {e:?}"
        );
        assert_invalid(f.ws.mkdir(p));
        assert_invalid(f.ws.rename("main.py", p, false));
        assert_invalid(f.ws.copy("main.py", p));
        assert_invalid(f.ws.stat(p));
        assert_invalid(f.ws.begin_write(p, Precondition::Overwrite, Some(1)));
    }
    assert_eq!(raw_names(&f.tree()), vec!["main.py"]);
}
