//! The listing of both layouts and of unlabeled trees, stored paths, and the splits.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::paths::os_string_from_bytes;
use super::*;

/// Images at several depths, a text file, and an image in a hidden folder.
const MIXED: [&str; 5] = [
    "b.jpg",
    "a/z.PNG",
    "a/notes.txt",
    "a/deeper/c.webp",
    ".hidden/x.jpg",
];

/// What a listing left out, as (path, kind).
fn ignored(data: &DataSet) -> Vec<(&str, IgnoredKind)> {
    data.ignored
        .iter()
        .map(|i| (i.path.as_str(), i.kind))
        .collect()
}

/// Writes a one-byte file at each of `files` (relative to `root`), making the folders.
fn tree(root: &Path, files: &[&str]) {
    for file in files {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }
}

#[test]
fn image_walk_is_recursive_sorted_and_skips_non_images_hidden_and_linked_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, &MIXED);
    tree(root, &["c.jpg"]);
    // A link back to the root: followed, it would loop for ever.
    #[cfg(unix)]
    std::os::unix::fs::symlink(root, root.join("a/loop")).unwrap();
    // Named like images but not files: listed, so the reader can say why it skips them.
    std::os::unix::fs::symlink(root.join("gone.jpg"), root.join("a/dangling.jpg")).unwrap();
    let found: Vec<PathBuf> = ImageWalk::new(root)
        .map(|p| p.unwrap().strip_prefix(root).unwrap().to_path_buf())
        .collect();
    let expected: Vec<PathBuf> = [
        "a/dangling.jpg",
        "a/deeper/c.webp",
        "a/z.PNG",
        "b.jpg",
        "c.jpg",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(found, expected);
    let missing: Vec<_> = ImageWalk::new(&root.join("absent")).collect();
    assert!(missing.is_empty(), "a path that is not there lists nothing");
}

#[cfg(unix)]
#[test]
fn an_unlabeled_tree_lists_images_at_every_depth_and_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, &MIXED);
    std::os::unix::fs::symlink(root, root.join("a/loop")).unwrap();
    std::os::unix::fs::symlink(root.join("gone.jpg"), root.join("dangling.jpg")).unwrap();
    let data = DataSet::unlabeled(root).unwrap();
    assert!(!data.is_labelled() && data.class_names.is_empty());
    let paths: Vec<&str> = data.samples.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        ["a/deeper/c.webp", "a/z.PNG", "b.jpg"],
        "as ImageWalk lists them"
    );
    assert_eq!(
        ignored(&data),
        [
            ("a/loop", IgnoredKind::LinkedFolder),
            ("a/notes.txt", IgnoredKind::NotAnImage),
            ("dangling.jpg", IgnoredKind::DanglingLink),
        ]
    );
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("notes.txt"), b"x").unwrap();
    assert!(matches!(
        DataSet::unlabeled(empty.path()),
        Err(DatasetError::NoImages(_))
    ));
}

#[test]
fn flowers_sized_split_is_40_20_20_and_seeded() {
    let labels: Vec<usize> = (0..17 * 80).map(|i| i / 80).collect();
    let splits = stratified_splits(&labels, SplitSpec::default(), 3, 7);
    for split in &splits {
        for class in 0..17 {
            let count = |p| {
                (0..labels.len())
                    .filter(|&i| labels[i] == class && split[i] == p)
                    .count()
            };
            assert_eq!(
                (count(Part::Train), count(Part::Val), count(Part::Test)),
                (40, 20, 20)
            );
        }
    }
    assert_ne!(splits[0], splits[1], "the three splits differ");
    assert_eq!(
        splits,
        stratified_splits(&labels, SplitSpec::default(), 3, 7)
    );
    assert_ne!(
        splits,
        stratified_splits(&labels, SplitSpec::default(), 3, 8)
    );
}

#[test]
fn split_spec_parses_and_refuses() {
    let spec: SplitSpec = "0.6,0.2,0.2".parse().unwrap();
    assert_eq!(spec.train, 0.6);
    assert_eq!(spec.to_string().parse::<SplitSpec>().unwrap(), spec);
    for bad in [
        "0.5,0.5",
        "0.5,0.4,0.4",
        "a,b,c",
        "0,0.5,0.5",
        "-0.5,1,0.5",
        "1,0,0",
        "0,0,1",
        "0.5,0.5,0",
        "NaN,0.5,0.5",
    ] {
        assert!(bad.parse::<SplitSpec>().is_err(), "{bad}");
    }
}

#[test]
fn tiny_classes_keep_a_training_image() {
    let labels = vec![0, 1, 1];
    let split = &stratified_splits(&labels, SplitSpec::default(), 1, 1)[0];
    assert_eq!(split[0], Part::Train);
    assert_eq!(split.iter().filter(|p| **p == Part::Train).count(), 2);
}

#[cfg(unix)]
fn os(bytes: &[u8]) -> OsString {
    os_string_from_bytes(bytes.to_vec())
}

#[cfg(unix)]
#[test]
fn stored_paths_are_lossless_and_keep_utf8_as_it_is() {
    assert_eq!(
        path_to_stored(Path::new("cats/été 1.jpg")),
        "cats/été 1.jpg"
    );
    let tricky = [
        &b"caf\xe9/img.jpg"[..],
        b"a%25b/100%.png",
        b"\xff\xfe%41/\x80x.jpg",
        b"plain/ok.jpg",
    ];
    let mut seen = std::collections::HashSet::new();
    for bytes in tricky {
        let path = PathBuf::from(os(bytes));
        let stored = path_to_stored(&path);
        assert_eq!(stored_to_path(&stored), path, "{stored}");
        assert!(seen.insert(stored), "distinct paths, distinct texts");
    }
    assert_eq!(path_to_stored(Path::new(&os(b"caf\xe9"))), "caf%E9");
    assert_eq!(path_to_stored(Path::new("100%")), "100%25");
}

#[cfg(unix)]
#[test]
fn listing_keeps_non_utf8_names_and_lists_what_it_ignores() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let odd_class = root.join(os(b"caf\xe9"));
    let plain = root.join("plain");
    std::fs::create_dir_all(&odd_class).unwrap();
    std::fs::create_dir_all(plain.join("nested")).unwrap();
    std::fs::write(odd_class.join(os(b"\xff.jpg")), b"x").unwrap();
    std::fs::write(plain.join("a.png"), b"x").unwrap();
    std::fs::write(plain.join("notes.txt"), b"x").unwrap();
    std::os::unix::fs::symlink(root.join("gone.jpg"), plain.join("dangling.jpg")).unwrap();
    std::fs::write(root.join("README"), b"x").unwrap();
    let data = DataSet::open(root).unwrap();
    assert_eq!(data.class_names, ["caf%E9", "plain"]);
    let paths: Vec<&str> = data.samples.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["caf%E9/%FF.jpg", "plain/a.png"]);
    assert!(data.full_path(&data.samples[0]).is_file());
    assert_eq!(
        ignored(&data),
        [
            ("README", IgnoredKind::OutsideClasses),
            ("plain/dangling.jpg", IgnoredKind::DanglingLink),
            ("plain/nested", IgnoredKind::SubFolder),
            ("plain/notes.txt", IgnoredKind::NotAnImage),
        ]
    );
}
