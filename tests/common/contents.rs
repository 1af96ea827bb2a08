//! Everything a cache file holds, for comparing two caches dataset by dataset and attribute by
//! attribute (features as raw bytes).

use std::collections::BTreeMap;
use std::path::Path;

use hdf5::types::{FixedAscii, VarLenUnicode};

/// Each dataset and attribute of the cache at `path`, rendered so that equal means equal
/// (features as their little-endian bytes, text as text, numbers in order).
pub fn cache_contents(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = hdf5::File::open(path).expect("cache opens");
    let mut contents = BTreeMap::new();
    for name in file.member_names().expect("members") {
        let dataset = file.dataset(&name).expect("dataset");
        let bytes: Vec<u8> = match name.as_str() {
            "features" => bytes(dataset.read_raw::<f32>(), f32::to_le_bytes),
            "status" | "split" => dataset.read_raw::<u8>().expect("u8"),
            "fingerprint" => bytes(dataset.read_raw::<u64>(), u64::to_le_bytes),
            "label" => bytes(dataset.read_raw::<i32>(), i32::to_le_bytes),
            "image" => bytes(dataset.read_raw::<u32>(), u32::to_le_bytes),
            "copy" => bytes(dataset.read_raw::<u16>(), u16::to_le_bytes),
            "skip_reason" => dataset
                .read_raw::<FixedAscii<200>>()
                .expect("reasons")
                .iter()
                .flat_map(|r| format!("{}\n", r.as_str()).into_bytes())
                .collect(),
            _ => dataset
                .read_raw::<VarLenUnicode>()
                .unwrap_or_else(|e| panic!("dataset {name} is not text ({e}): compare it here"))
                .iter()
                .flat_map(|r| format!("{}\n", r.as_str()).into_bytes())
                .collect(),
        };
        contents.insert(format!("dataset {name} {:?}", dataset.shape()), bytes);
    }
    for name in file.attr_names().expect("attributes") {
        let value: VarLenUnicode = file
            .attr(&name)
            .and_then(|a| a.read_scalar())
            .expect("text attribute");
        contents.insert(
            format!("attribute {name}"),
            value.as_str().as_bytes().to_vec(),
        );
    }
    contents
}

fn bytes<T, const N: usize>(values: hdf5::Result<Vec<T>>, le: fn(T) -> [u8; N]) -> Vec<u8> {
    values.expect("numbers").into_iter().flat_map(le).collect()
}

/// Asserts two caches hold the same datasets and attributes, naming the first that differs.
pub fn assert_same_cache(actual: &Path, expected: &Path) {
    let (a, e) = (cache_contents(actual), cache_contents(expected));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        e.keys().collect::<Vec<_>>(),
        "{} and {} hold different datasets or attributes",
        actual.display(),
        expected.display()
    );
    for (key, value) in &e {
        assert!(
            a[key] == *value,
            "{key} differs between {} and {}",
            actual.display(),
            expected.display()
        );
    }
}
