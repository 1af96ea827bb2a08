//! Finding and loading the ONNX Runtime shared library, once per process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::error::{BackboneError, ORT_LIB_ENV};

/// File name of the ONNX Runtime library (`make ort` puts it in the checkout's `.ort/`).
const ORT_LIB_NAME: &str = "libonnxruntime.so";

/// Loads ONNX Runtime once per process, from the first of [`ort_library_candidates`] that exists.
pub fn environment() -> Result<&'static ort::environment::Environment, BackboneError> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    let path = ort_library_path()?;
    let env = ENV.get_or_init(|| {
        ort::init_from(&path)
            .map_err(|e| e.to_string())?
            .with_name("tlearn")
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|message| BackboneError::Runtime {
        path,
        message: message.clone(),
    })
}

/// The ONNX Runtime library that [`environment`] loads: the first candidate that exists.
fn ort_library_path() -> Result<PathBuf, BackboneError> {
    let candidates = ort_library_candidates();
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => Ok(path.clone()),
        None => Err(BackboneError::RuntimeNotFound(candidates)),
    }
}

/// Where ONNX Runtime is looked for, in order: `ORT_DYLIB_PATH` alone when it is set; else
/// next to the executable, then the `.ort/` of a checkout the executable was built in
/// (`target/<profile>/` or `target/<profile>/deps/` below it), then `./.ort/`. Nothing is baked
/// in at build time, so a copied binary finds a library beside it.
pub fn ort_library_candidates() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os(ORT_LIB_ENV) {
        return vec![PathBuf::from(path)];
    }
    let mut candidates = Vec::new();
    let exe = std::env::current_exe().and_then(|e| e.canonicalize());
    if let Some(dir) = exe.as_ref().ok().and_then(|e| e.parent()) {
        candidates.push(dir.join(ORT_LIB_NAME));
        for checkout in dir.ancestors().skip(2).take(2) {
            candidates.push(checkout.join(".ort").join(ORT_LIB_NAME));
        }
    }
    candidates.push(Path::new(".ort").join(ORT_LIB_NAME));
    candidates
}
