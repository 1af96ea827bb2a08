//! `tlearn features` as a separate process over hostile input: a generated corpus of broken,
//! huge, strange and oddly named files, a cache another process holds, a full disk, options
//! out of range. Never a panic (exit code 101), never success with a wrong result, never a
//! good row lost. Serialised: a child inherits the HDF5 files (and locks) open beside it.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::fixtures::{image_folder, python, serial, tiny_backbone, tlearn};
use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use tlearn::cache::{FeatureCache, RowStatus};

/// `tlearn features --quiet` of `data` with `model` into `out`, plus `extra` arguments.
fn features(data: &Path, model: &Path, out: &Path, extra: &[&str]) -> Output {
    tlearn()
        .args(["features", "--quiet", "--layer", "block2_pool"])
        .args(extra)
        .arg("--data")
        .arg(data)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_no_panic(output: &Output) {
    assert_ne!(output.status.code(), Some(101), "{}", stderr(output));
    assert!(!stderr(output).contains("panicked"), "{}", stderr(output));
}

fn noisy(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut state = 0x2545_f491_u32 ^ seed;
    RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    })
}

fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

/// Offset of the first `FF marker` segment of a JPEG.
fn jpeg_segment(jpeg: &[u8], marker: u8) -> usize {
    jpeg.windows(2).position(|w| w == [0xFF, marker]).unwrap()
}

/// Good images every tool can read, though odd: (file name, bytes).
fn good_files() -> Vec<(PathBuf, Vec<u8>)> {
    let img = |seed| image::DynamicImage::from(noisy(48, 40, seed));
    let rgba = RgbaImage::from_fn(30, 30, |x, y| {
        Rgba([x as u8 * 8, y as u8 * 8, 90, (x * y) as u8])
    });
    let deep: image::ImageBuffer<Rgb<u16>, Vec<u16>> =
        image::ImageBuffer::from_fn(20, 20, |x, y| {
            Rgb([x as u16 * 3000, y as u16 * 3000, 65535])
        });
    let mut animated = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut animated);
        let frames = (0..3)
            .map(|i| image::Frame::new(image::DynamicImage::from(noisy(24, 24, i)).into_rgba8()));
        encoder.encode_frames(frames).unwrap();
    }
    vec![
        ("plain.jpg".into(), encode(&img(1), ImageFormat::Jpeg)),
        ("plain.png".into(), encode(&img(2), ImageFormat::Png)),
        ("plain.bmp".into(), encode(&img(3), ImageFormat::Bmp)),
        ("plain.tiff".into(), encode(&img(4), ImageFormat::Tiff)),
        ("alpha.png".into(), encode(&rgba.into(), ImageFormat::Png)),
        ("deep.png".into(), encode(&deep.into(), ImageFormat::Png)),
        (
            "grey.jpg".into(),
            encode(&img(5).grayscale(), ImageFormat::Jpeg),
        ),
        ("animated.gif".into(), animated),
        (
            non_utf8_name(b"caf\xe9.png"),
            encode(&img(6), ImageFormat::Png),
        ),
        ("a png named.jpg".into(), encode(&img(7), ImageFormat::Png)),
    ]
}

#[cfg(unix)]
fn non_utf8_name(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn non_utf8_name(_bytes: &[u8]) -> PathBuf {
    PathBuf::from("non-utf8.png")
}

/// Files no tool should turn into features: (file name, bytes).
fn bad_files() -> Vec<(&'static str, Vec<u8>)> {
    let jpeg = encode(&noisy(64, 48, 9).into(), ImageFormat::Jpeg);
    let png = encode(&noisy(64, 48, 10).into(), ImageFormat::Png);
    let gif = encode(&noisy(16, 16, 11).into(), ImageFormat::Gif);
    let bmp = encode(&noisy(16, 16, 12).into(), ImageFormat::Bmp);
    let mut cut_with_end = jpeg[..jpeg.len() / 2].to_vec();
    cut_with_end.extend_from_slice(&[0xFF, 0xD9]);
    // Decompression bombs: valid files whose headers claim a huge canvas.
    let mut jpeg_bomb = jpeg.clone();
    let sof = jpeg_segment(&jpeg_bomb, 0xC0);
    jpeg_bomb[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]); // 65000 x 65000
    let mut png_bomb = png.clone();
    png_bomb[16..24].copy_from_slice(&[0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0]); // 100000 x 100000
    let crc = crc32(&png_bomb[12..29]);
    png_bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let mut gif_bomb = gif.clone();
    gif_bomb[6..10].copy_from_slice(&[0xFF; 4]); // screen 65535 x 65535
    let descriptor = gif_bomb.iter().position(|b| *b == 0x2C).unwrap();
    gif_bomb[descriptor + 5..descriptor + 9].copy_from_slice(&[0xFF; 4]);
    let mut bmp_bomb = bmp.clone();
    bmp_bomb[18..26].copy_from_slice(&[0xA0, 0x86, 0x01, 0, 0xA0, 0x86, 0x01, 0]); // 100000^2
    let mut random = vec![0u8; 4096];
    let mut state = 77u32;
    for b in &mut random {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (state >> 16) as u8;
    }
    let mut jpeg_random = jpeg[..jpeg_segment(&jpeg, 0xDA) + 14].to_vec();
    jpeg_random.extend_from_slice(&random);
    jpeg_random.extend_from_slice(&[0xFF, 0xD9]);
    vec![
        ("empty.jpg", Vec::new()),
        ("cut.jpg", jpeg[..jpeg.len() * 2 / 3].to_vec()),
        ("cut-with-end.jpg", cut_with_end),
        ("cut.png", png[..png.len() / 2].to_vec()),
        ("cut.gif", gif[..gif.len() / 2].to_vec()),
        ("random.png", random.clone()),
        ("random-scan.jpg", jpeg_random),
        ("bomb.jpg", jpeg_bomb),
        ("bomb.png", png_bomb),
        ("bomb.gif", gif_bomb),
        ("bomb.bmp", bmp_bomb),
        ("dot.png", encode(&noisy(1, 1, 13).into(), ImageFormat::Png)),
        ("text.jpg", b"not an image at all\n".to_vec()),
    ]
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// CMYK, progressive and palette images, written by PIL (the `image` crate writes none of them).
fn pil_files(dir: &Path) -> Vec<&'static str> {
    let script = "import sys\nfrom PIL import Image\nd = sys.argv[1]\n\
        rgb = Image.effect_noise((120, 96), 60).convert('RGB')\n\
        rgb.convert('CMYK').save(d + '/cmyk.jpg')\n\
        rgb.save(d + '/progressive.jpg', progressive=True)\n\
        rgb.convert('P').save(d + '/palette.png')\n\
        rgb.convert('I;16').save(d + '/grey16.png')\n";
    let status = common::fixtures::command(python())
        .args(["-c", script])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "PIL writes the odd images");
    vec!["cmyk.jpg", "progressive.jpg", "palette.png", "grey16.png"]
}

#[test]
fn a_hostile_corpus_never_panics_nor_loses_a_good_image() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let hostile = data.join(non_utf8_name(b"hostile-\xff"));
    std::fs::create_dir_all(&hostile).unwrap();
    let mut good: Vec<PathBuf> = Vec::new();
    for (name, bytes) in good_files() {
        std::fs::write(hostile.join(&name), bytes).unwrap();
        good.push(name);
    }
    good.extend(pil_files(&hostile).into_iter().map(PathBuf::from));
    // A progressive JPEG cut inside a scan, then given an end marker.
    let progressive = std::fs::read(hostile.join("progressive.jpg")).unwrap();
    let mut cut = progressive[..progressive.len() * 3 / 4].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    std::fs::write(hostile.join("progressive-cut.jpg"), cut).unwrap();
    let bad = bad_files();
    for (name, bytes) in &bad {
        std::fs::write(hostile.join(name), bytes).unwrap();
    }
    // Sparse: 3 GB that take no disk space.
    std::fs::File::create(hostile.join("huge.jpg"))
        .unwrap()
        .set_len(3 << 30)
        .unwrap();

    let out = dir.path().join("f.h5");
    let output = features(&data, &model, &out, &[]);
    assert_no_panic(&output);
    assert!(output.status.success(), "{}", stderr(&output));

    let cache = FeatureCache::open(&out).unwrap();
    let status = cache.status().unwrap();
    let paths = cache.paths().unwrap();
    let status_of = |name: &Path| {
        let stored = tlearn::dataset::path_to_stored(&non_utf8_name(b"hostile-\xff").join(name));
        let row = paths.iter().position(|p| *p == stored);
        row.map(|r| status[r])
            .unwrap_or_else(|| panic!("{stored} is in the cache"))
    };
    for name in &good {
        assert_eq!(status_of(name), RowStatus::Done, "{}", name.display());
    }
    assert_eq!(
        status.iter().filter(|s| **s == RowStatus::Done).count(),
        good.len() + 4,
        "every good image, and the 4 plain ones"
    );
    // Unusable files are left out before planning (no row, no place in a split), each named
    // with its reason in the summary.
    assert_eq!(paths.len(), good.len() + 4, "{paths:?}");
    let text = stderr(&output);
    let names = bad.iter().map(|(n, _)| *n);
    for name in names.chain(["huge.jpg", "progressive-cut.jpg"]) {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("/{name}: ")))
            .unwrap_or_else(|| panic!("{name} is named as skipped: {text}"));
        // Bombs are refused from their header, before their pixels are allocated.
        if name.starts_with("bomb") || name == "huge.jpg" {
            assert!(line.to_lowercase().contains("too large"), "{line}");
        }
    }
    assert!(
        text.contains(&format!("skipped {} image(s)", bad.len() + 2)),
        "{text}"
    );
    drop(cache);
    let info = tlearn().arg("cache").arg(&out).output().unwrap();
    assert_no_panic(&info);
    assert!(info.status.success(), "{}", stderr(&info));
}

#[test]
fn numeric_options_out_of_range_are_refused_by_the_command_line() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let out = dir.path().join("f.h5");
    for args in [
        &["--splits", "0"][..],
        &["--copies", "70000", "--augment", "flip"],
        &["--per-class", "0"],
        &["--batch", "0"],
        &["--threads", "0"],
        &["--split", "1,0,0"],
        &["--split", "0,0,1"],
    ] {
        let output = features(&data, &model, &out, args);
        assert_no_panic(&output);
        // 1: refused by tlearn's check; 2: by the argument parser (a --split that does not parse).
        assert!(
            matches!(output.status.code(), Some(1 | 2)),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(&format!("--{}", &args[0][2..])),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!out.exists(), "{args:?}: nothing written");
    }
}

#[test]
fn a_cache_another_process_writes_is_named_busy_and_its_progress_shown() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let out = dir.path().join("f.h5");
    assert!(features(&data, &model, &out, &[]).status.success());
    // This process holds the write lock, as a running `tlearn features` does.
    let writer = hdf5::File::open_rw(&out).unwrap();
    let second = features(&data, &model, &out, &[]);
    assert_no_panic(&second);
    assert_eq!(second.status.code(), Some(1));
    let message = stderr(&second);
    assert!(
        message.contains("being written by another process"),
        "{message}"
    );
    assert!(!message.contains("delete"), "{message}");
    let info = tlearn().arg("cache").arg(&out).output().unwrap();
    let stdout = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(
        stdout.contains("being written by another process: 6 of 6 rows finished"),
        "{stdout}"
    );
    drop(writer);
    let info = tlearn().arg("cache").arg(&out).output().unwrap();
    assert!(!String::from_utf8_lossy(&info.stdout).contains("another process"));
}

#[test]
fn ignored_entries_are_counted_and_named_with_verbose() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    std::fs::write(data.join("class_0/notes.txt"), b"x").unwrap();
    std::fs::write(data.join("class_1/list.csv"), b"x").unwrap();
    std::fs::create_dir_all(data.join("class_1/nested")).unwrap();
    let quiet = features(&data, &model, &dir.path().join("a.h5"), &[]);
    let message = stderr(&quiet);
    assert!(
        message.contains("ignored 3 entries of the data folder: 2 not an image by its extension, 1 nested folder"),
        "{message}"
    );
    assert!(!message.contains("notes.txt"), "{message}");
    let verbose = features(&data, &model, &dir.path().join("b.h5"), &["--verbose"]);
    let message = stderr(&verbose);
    for name in ["class_0/notes.txt", "class_1/list.csv", "class_1/nested"] {
        assert!(message.contains(name), "{message}");
    }
}

/// A 1 MiB tmpfs at `dir`, unmounted on drop; `None` where mounting is not allowed (not root).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = common::fixtures::command("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }

    /// Leaves about `free` bytes free.
    fn fill_to(&self, free: usize) {
        let _ = std::fs::remove_file(self.0.join("filler"));
        let _ = std::fs::write(self.0.join("filler"), vec![7u8; (1 << 20) - free]);
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = common::fixtures::command("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_said_plainly_and_leaves_no_partial_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    // 40 rows x 512 features: 80 KiB of features.
    let data = image_folder(dir.path(), 2, 20);
    let Some(disk) = SmallDisk::mount(&dir.path().join("small")) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let out = disk.0.join("f.h5");
    // Far too little room: refused before anything is written.
    disk.fill_to(40 << 10);
    let output = features(&data, &model, &out, &[]);
    assert_no_panic(&output);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("is full") && message.contains("needs at least 81920"),
        "{message}"
    );
    assert_eq!(disk.files(), ["filler"]);
    // Room for the features but not the rest: HDF5 fails while writing the layout.
    for free in [84 << 10, 100 << 10, 120 << 10] {
        disk.fill_to(free);
        let output = features(&data, &model, &out, &[]);
        assert_no_panic(&output);
        let message = stderr(&output);
        assert!(!message.contains("unknown library error"), "{message}");
        if output.status.success() {
            continue;
        }
        assert!(message.contains("is full"), "{message}");
        assert!(
            !disk.files().iter().any(|f| f.ends_with(".partial")),
            "{:?}",
            disk.files()
        );
    }
}

#[test]
fn the_summary_names_images_recomputed_because_their_file_changed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let out = dir.path().join("f.h5");
    assert!(features(&data, &model, &out, &[]).status.success());
    std::fs::copy(
        data.join("class_1/img_00.png"),
        data.join("class_0/img_02.png"),
    )
    .unwrap();
    let again = features(&data, &model, &out, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let message = stderr(&again);
    assert!(
        message.contains("recomputed 1 image(s) whose file changed since it was cached (all their rows):\n  class_0/img_02.png"),
        "{message}"
    );
}

/// The files a generated case may read but never change: a data set, a backbone, a cache, a
/// trained run, an image, a text file, a folder, a FIFO and a dangling link.
struct Inputs {
    dir: tempfile::TempDir,
    values: std::collections::BTreeMap<&'static str, PathBuf>,
}

impl Inputs {
    fn make() -> Inputs {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("inputs");
        std::fs::create_dir_all(&root).unwrap();
        let model = tiny_backbone(&root);
        let data = image_folder(&root, 2, 4);
        let cache = root.join("tiny.h5");
        let mut cfg = common::fixtures::config(&data, &model, &cache);
        cfg.pooling = tlearn::backbone::Pooling::Avg;
        tlearn::extract::run(&cfg, &tlearn::progress::Stop::new()).unwrap();
        let runs = root.join("runs");
        let trained = tlearn()
            .args([
                "train", "logistic", "--quiet", "--c", "1", "--run", "tiny", "--cache",
            ])
            .arg(&cache)
            .arg("--runs")
            .arg(&runs)
            .arg("--reports")
            .arg(root.join("reports"))
            .output()
            .unwrap();
        assert!(trained.status.success(), "{}", stderr(&trained));
        std::fs::write(root.join("notes.txt"), "a user's notes\n").unwrap();
        std::fs::create_dir_all(root.join("folder")).unwrap();
        common::fixtures::mkfifo(&root.join("pipe.jpg"));
        std::os::unix::fs::symlink(root.join("gone.png"), root.join("dangling.png")).unwrap();
        let values = [
            ("data", data.clone()),
            ("model", model),
            ("cache", cache),
            ("run", runs.join("tiny")),
            ("image", data.join("class_0/img_00.png")),
            ("file", root.join("notes.txt")),
            ("folder", root.join("folder")),
            ("fifo", root.join("pipe.jpg")),
            ("dangling", root.join("dangling.png")),
        ]
        .into_iter()
        .collect();
        Inputs { dir, values }
    }

    /// Every file under the inputs (links not followed, FIFOs not opened) and its bytes.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![self.dir.path().join("inputs")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    stack.push(path);
                } else if meta.is_file() {
                    let bytes = std::fs::read(&path).unwrap();
                    files.push((path, bytes));
                } else {
                    files.push((path, format!("{:?}", meta.file_type()).into_bytes()));
                }
            }
        }
        files.sort();
        files
    }
}

/// Every subcommand with a command line that can work; `{name}` is one of [`Inputs`]' paths,
/// `{out}` a fresh folder of the case's own. A word after `@` is a positional argument, junked
/// like a flag's value.
const COMMANDS: &[(&str, &str)] = &[
    ("features", "--data {data} --backbone {model} --layer block2_pool --cache {out}/f.h5 --quiet"),
    ("cache", "@{cache}"),
    ("cache export", "--npy {out}/export @{cache}"),
    ("cache merge", "--out {out}/m.h5 @{cache}"),
    ("model cut", "@{model} --output block1_pool --out {out}/cut.onnx"),
    ("model quantize", "@{model} --calibrate {data} --images 4 --out {out}/q.onnx"),
    ("model inspect", "@{model}"),
    ("augment preview", "@{image} --copies 2 --tile 16 --out {out}/p.png"),
    ("bench", "--data {data} --backbone {model} --layer block2_pool --per-class 2 --rounds 1 --quiet"),
    ("auto", "--data {data} --out {out}/auto --backbone {model} --layers block2_pool --copies 0 --classifiers logistic --c 1 --splits 1 --epochs 1 --no-finetune --quiet"),
    ("train", "@logistic --cache {cache} --runs {out}/runs --reports {out}/reports --c 1 --quiet"),
    ("predict", "--model {run} --quiet @{image}"),
    ("report", "--reports {out}/reports"),
    ("bench-classifiers", "--cache {cache}"),
    ("finetune train", "--cache {cache} --backbone {model} --epochs 1 --runs {out}/runs --reports {out}/reports --quiet"),
    ("finetune export-graph", "--cache {cache} --backbone {model} --out {out}/graph"),
    ("finetune bench", "--cache {cache} --backbone {model} --steps 1"),
];

/// Junk for any value: zero, negative, not a number, infinite, underflowing, huge, empty, and
/// paths of the wrong kind (a folder for a file, a file for a folder, a FIFO, a dangling link).
fn junk_values(inputs: &Inputs) -> Vec<std::ffi::OsString> {
    let mut values: Vec<std::ffi::OsString> =
        ["0", "-1", "nan", "inf", "1e-400", "1e400", "4294967296", ""]
            .iter()
            .map(Into::into)
            .collect();
    for name in ["folder", "file", "fifo", "dangling"] {
        values.push(inputs.values[name].clone().into());
    }
    values
}

/// The flags `tlearn WORDS --help` lists: (flag, takes a value).
fn flags_of(words: &[&str]) -> Vec<(String, bool)> {
    let help = tlearn().args(words).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix("-q, ")
                .or(line.strip_prefix("-v, "))
                .unwrap_or(line);
            let flag = line.strip_prefix("--")?.split_whitespace().next()?;
            (flag != "help").then(|| (format!("--{flag}"), line.contains(" <")))
        })
        .collect()
}

/// One generated case: the command line, and a description for the failure list.
struct Case {
    args: Vec<std::ffi::OsString>,
    /// Whether a junk value is one of the inputs' paths (a folder, a file, a FIFO, a link).
    given_a_path: bool,
    shown: String,
    out: PathBuf,
}

/// Every case: each flag of each command with each junk value (replacing the working value or
/// added), each boolean flag added, each positional argument replaced.
fn cases(inputs: &Inputs, scratch: &Path) -> Vec<Case> {
    let junk = junk_values(inputs);
    let mut all = Vec::new();
    for (command, base) in COMMANDS {
        let words: Vec<&str> = command.split(' ').collect();
        let base: Vec<&str> = base.split(' ').collect();
        let mut variants: Vec<(String, Vec<String>, Option<usize>)> = Vec::new();
        for (flag, takes_value) in flags_of(&words) {
            let at = base.iter().position(|w| *w == flag);
            if takes_value {
                variants.push((
                    flag.clone(),
                    base.iter().map(|w| w.to_string()).collect(),
                    at.map(|i| i + 1).or(Some(usize::MAX)),
                ));
            } else if at.is_none() {
                let mut with: Vec<String> = base.iter().map(|w| w.to_string()).collect();
                with.push(flag.clone());
                variants.push((flag, with, None));
            }
        }
        for (i, word) in base.iter().enumerate() {
            if word.starts_with('@') {
                variants.push((
                    format!("argument {i}"),
                    base.iter().map(|w| w.to_string()).collect(),
                    Some(i),
                ));
            }
        }
        for (what, words_of_case, slot) in variants {
            let values: Vec<Option<&std::ffi::OsString>> = match slot {
                None => vec![None],
                Some(_) => junk.iter().map(Some).collect(),
            };
            for value in values {
                let n = all.len();
                let out = scratch.join(format!("case-{n}"));
                let fill = |w: &str| -> std::ffi::OsString {
                    let w = w.trim_start_matches('@');
                    let mut text = w.replace("{out}", &out.display().to_string());
                    for (name, path) in &inputs.values {
                        text = text.replace(&format!("{{{name}}}"), &path.display().to_string());
                    }
                    text.into()
                };
                let mut args: Vec<std::ffi::OsString> = words.iter().map(Into::into).collect();
                let mut line: Vec<std::ffi::OsString> =
                    words_of_case.iter().map(|w| fill(w)).collect();
                match (slot, value) {
                    (Some(usize::MAX), Some(v)) => {
                        let mut flag = std::ffi::OsString::from(format!("{what}="));
                        flag.push(v);
                        line.push(flag);
                    }
                    (Some(i), Some(v)) if what.starts_with("--") => {
                        line.remove(i);
                        let mut flag = std::ffi::OsString::from(format!("{what}="));
                        flag.push(v);
                        line[i - 1] = flag;
                    }
                    (Some(i), Some(v)) => line[i] = v.clone(),
                    _ => {}
                }
                args.extend(line);
                let shown = format!(
                    "tlearn {}",
                    args.iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                let given_a_path =
                    value.is_some_and(|v| !v.is_empty() && Path::new(v).is_absolute());
                all.push(Case {
                    args,
                    given_a_path,
                    shown,
                    out: out.clone(),
                });
            }
        }
    }
    all
}

/// What is wrong with one case's run, if anything.
fn judge(case: &Case, output: Option<&Output>) -> Option<String> {
    let Some(output) = output else {
        return Some(format!(
            "{}: still running after the time limit (a hang?)",
            case.shown
        ));
    };
    let text = stderr(output);
    let Some(code) = output.status.code() else {
        return Some(format!("{}: killed by a signal: {text}", case.shown));
    };
    if code == 101 || text.contains("panicked") {
        return Some(format!("{}: panicked: {text}", case.shown));
    }
    // A case given an input's path as an output may have written there (checked apart).
    let wrote =
        case.given_a_path || std::fs::read_dir(&case.out).is_ok_and(|mut d| d.next().is_some());
    if code == 0 && output.stdout.is_empty() && !wrote {
        return Some(format!(
            "{}: exit 0 with nothing done (no output, no file)",
            case.shown
        ));
    }
    None
}

#[test]
fn every_flag_of_every_command_with_junk_values_fails_cleanly_and_changes_no_input() {
    let _serial = serial();
    let inputs = Inputs::make();
    let scratch = inputs.dir.path().join("scratch");
    let before = inputs.snapshot();
    let cases = cases(&inputs, &scratch);
    assert!(
        cases.len() > 500,
        "the generator found the flags: {} cases",
        cases.len()
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let limit = std::time::Duration::from_secs(60);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                std::fs::create_dir_all(&case.out).unwrap();
                let mut command = tlearn();
                command.args(&case.args).current_dir(&case.out);
                let output = common::fixtures::output_within(&mut command, b"", limit);
                if let Some(failure) = judge(case, output.as_ref()) {
                    failures.lock().unwrap().push(failure);
                }
                let _ = std::fs::remove_dir_all(&case.out);
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    // Every input file is still there, byte for byte; new files may appear only in the empty
    // folder some cases give as an output folder (where a user asked tlearn to write).
    let after: std::collections::BTreeMap<PathBuf, Vec<u8>> =
        inputs.snapshot().into_iter().collect();
    let folder = &inputs.values["folder"];
    for (path, bytes) in &before {
        if after.get(path) != Some(bytes) {
            failures.push(format!("input {} changed or removed", path.display()));
        }
    }
    let known: std::collections::BTreeSet<&PathBuf> = before.iter().map(|(p, _)| p).collect();
    for path in after
        .keys()
        .filter(|p| !known.contains(p) && !p.starts_with(folder))
    {
        failures.push(format!("{} written among the inputs", path.display()));
    }
    assert!(
        failures.is_empty(),
        "{} problems in {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
