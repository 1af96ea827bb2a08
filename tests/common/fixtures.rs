//! Fixtures for the pipeline tests: a tiny backbone with its descriptor, generated image
//! folders, the real VGG16 and flowers slice, and the CLI binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use image::{Rgb, RgbImage};
use tlearn::augment::Recipe;
use tlearn::backbone::{sha256_file, ExecutionProvider, Pooling};
use tlearn::extract::ExtractConfig;
use tlearn::preprocess::{DecodeLimits, Preprocessing};

/// Writes [`super::tiny_vgg`] and its descriptor (32 x 32 input, caffe preprocessing) into `dir`.
pub fn tiny_backbone(dir: &Path) -> PathBuf {
    let model = dir.join("tiny.onnx");
    super::tiny_vgg().save(&model).expect("tiny model saves");
    let preprocessing = toml::to_string(&Preprocessing::caffe(32)).expect("serialises");
    let descriptor = format!(
        "name = \"tiny\"\nsha256 = \"{}\"\ninput = \"input\"\nlayers = [\"block1_pool\", \"block2_pool\"]\n\n[preprocessing]\n{preprocessing}",
        sha256_file(&model).expect("hashable")
    );
    std::fs::write(dir.join("tiny.toml"), descriptor).expect("descriptor writes");
    model
}

/// A folder-per-class data set of generated images: each class its own colour and stripe pattern.
pub fn image_folder(dir: &Path, classes: usize, per_class: usize) -> PathBuf {
    let root = dir.join("images");
    for c in 0..classes {
        let class_dir = root.join(format!("class_{c}"));
        std::fs::create_dir_all(&class_dir).expect("mkdir");
        for i in 0..per_class {
            let (w, h) = (40 + 7 * i as u32, 30 + 5 * c as u32);
            let img = RgbImage::from_fn(w, h, |x, y| {
                let stripe = ((x + y * c as u32 + i as u32) / (2 + c as u32)).is_multiple_of(2);
                let base = [(60 * c) as u8, (255 - 40 * c) as u8, (17 * i) as u8];
                if stripe {
                    Rgb(base)
                } else {
                    Rgb([base[0] / 2, base[1] / 3, 255 - base[2]])
                }
            });
            img.save(class_dir.join(format!("img_{i:02}.png")))
                .expect("png saves");
        }
    }
    root
}

/// An extraction of `data` with `model` into `out`: flatten of block2_pool, no augmentation, one split.
pub fn config(data: &Path, model: &Path, out: &Path) -> ExtractConfig {
    ExtractConfig {
        data: data.to_path_buf(),
        unlabeled: false,
        backbone: model.to_path_buf(),
        layers: vec!["block2_pool".into()],
        pooling: Pooling::Flatten,
        reprs: Vec::new(),
        recipe: Recipe::default(),
        copies: 0,
        size: None,
        augment_all: false,
        split: Default::default(),
        splits: 1,
        seed: 7,
        batch: 4,
        ep: ExecutionProvider::Cpu,
        threads: 1,
        strict: false,
        limits: DecodeLimits::default(),
        per_class: None,
        cache: out.to_path_buf(),
        progress: None,
    }
}

/// A complete cache of the tiny backbone in `dir/tiny.h5`: 3 classes of 8 generated images,
/// flattened block2_pool, two splits, after `adjust` changed the extraction (pooling,
/// copies, out); the cache's path.
pub fn tiny_cache(dir: &Path, adjust: impl FnOnce(&mut ExtractConfig)) -> PathBuf {
    let model = tiny_backbone(dir);
    let data = image_folder(dir, 3, 8);
    let mut cfg = config(&data, &model, &dir.join("tiny.h5"));
    cfg.splits = 2;
    adjust(&mut cfg);
    tlearn::extract::run(&cfg, &tlearn::progress::Stop::new()).expect("the tiny cache is made");
    cfg.cache
}

/// Serialises the tests that spawn processes, and the tests that hold HDF5 files open beside
/// them: one lock for every module of the test binary (HDF5 locks its files, and a test
/// reopening one must not meet another test's child). It also keeps the heavy command-line
/// runs from competing for the cores.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `program` as a child that inherits no file descriptor but its standard streams: every test
/// runs in one process, and a child inheriting an HDF5 file another test has open would hold
/// that file's lock until it exits (HDF5 opens its files without close-on-exec).
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    // Descriptors are numbered from the lowest free one: those open now, plus room for the
    // ones other tests open before the fork, are all there are.
    let highest = std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| fd.ok()?.file_name().to_str()?.parse().ok())
                .max()
        })
        .ok()
        .flatten()
        .unwrap_or(1024);
    let last = highest + 256;
    // SAFETY: between fork and exec the child only calls fcntl, which is async-signal-safe and
    // does not allocate; a descriptor that is not open is skipped by its error.
    unsafe {
        command.pre_exec(move || {
            for fd in 3..=last {
                let fd = rustix::fd::BorrowedFd::borrow_raw(fd);
                let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
            }
            Ok(())
        });
    }
    command
}

/// The `tlearn` binary built for these tests.
pub fn tlearn() -> Command {
    command(env!("CARGO_BIN_EXE_tlearn"))
}

/// Runs `tlearn ARGS` and asserts that it succeeds (showing its stderr if not); its stdout.
pub fn tlearn_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = tlearn().args(args).output().expect("tlearn runs");
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        out.status.success(),
        "tlearn {shown:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `tlearn ARGS` and asserts that it fails with an error (exit status 1, or 2 for a
/// command line clap refuses), not a panic (101) or a signal; its stderr.
pub fn tlearn_err<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = tlearn().args(args).output().expect("tlearn runs");
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "tlearn {shown:?} should fail with an error, not {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real VGG16 built by `make models`; a clear failure when it is missing.
pub fn vgg16() -> PathBuf {
    let model = repo().join("models/vgg16.onnx");
    assert!(
        model.exists(),
        "{} is missing: run `make models` (or `make test`, which builds it)",
        model.display()
    );
    model
}

/// The Oxford 17 flowers (FLOWERS17_DIR, else ../shared/flowers17); a clear failure when missing.
pub fn flowers() -> PathBuf {
    let dir = std::env::var_os("FLOWERS17_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/flowers17"));
    assert!(
        dir.join("jpg").is_dir(),
        "flowers data set not found at {}: set FLOWERS17_DIR or run `make data`",
        dir.display()
    );
    dir
}

/// A folder-per-class slice of the flowers: the first `per_class` images of the first `classes` classes.
pub fn flowers_slice(dir: &Path, classes: usize, per_class: usize) -> PathBuf {
    let source = flowers().join("jpg");
    let root = dir.join("flowers-slice");
    for c in 0..classes {
        let class_dir = root.join(tlearn::dataset::FLOWERS17_CLASSES[c]);
        std::fs::create_dir_all(&class_dir).expect("mkdir");
        for i in 0..per_class {
            let name = format!("image_{:04}.jpg", c * 80 + i + 1);
            std::fs::copy(source.join(&name), class_dir.join(&name)).expect("copy flower image");
        }
    }
    root
}

/// The Python with numpy, pillow, h5py, onnx and onnxruntime that `make venv` sets up.
pub fn python() -> PathBuf {
    let python = std::env::var_os("TLEARN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run `make venv` (or `make test`)",
        python.display()
    );
    python
}

/// Reads the `features` dataset of a cache as raw little-endian bytes, for exact comparisons.
pub fn feature_bytes(cache: &Path) -> Vec<u8> {
    let features = tlearn::cache::FeatureCache::open(cache)
        .expect("cache opens")
        .features()
        .expect("features read");
    features.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Marks `rows` missing with zero features, as a process killed before writing them leaves them.
pub fn forget_rows(cache: &Path, rows: &[usize]) {
    let file = hdf5::File::open_rw(cache).unwrap();
    let dims = file.dataset("features").unwrap().shape()[1];
    for &row in rows {
        file.dataset("features")
            .unwrap()
            .write_slice(
                &ndarray::Array2::<f32>::zeros((1, dims)),
                ndarray::s![row..row + 1, ..],
            )
            .unwrap();
        file.dataset("status")
            .unwrap()
            .write_slice(&ndarray::Array1::<u8>::zeros(1), ndarray::s![row..row + 1])
            .unwrap();
    }
}

/// Makes a FIFO (named pipe) at `path`: reading it blocks until a writer comes, for ever here.
#[cfg(unix)]
pub fn mkfifo(path: &Path) {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o644), 0)
        .unwrap_or_else(|e| panic!("mkfifo {path:?}: {e}"));
}

/// Runs `command` with `stdin` as its standard input; `None` if it is still running after
/// `limit` (it is then killed): a hang is a failure the caller names, never a stuck test.
pub fn output_within(
    command: &mut Command,
    stdin: &[u8],
    limit: std::time::Duration,
) -> Option<std::process::Output> {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut input = child.stdin.take().expect("piped");
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = writer.join();
    let (stdout, stderr) = (out.join().expect("reads"), err.join().expect("reads"));
    status.map(|status| std::process::Output {
        status,
        stdout,
        stderr,
    })
}
