//! The one comparison of what made features: a cache against the run resuming it, a shard
//! against another, a model against a cache's features or against a backbone. Every refusal
//! names each setting that differs the same way: "X differs: cache has A, model has B".

use serde::Serialize;

use super::Identity;

/// The settings found to differ between two sides, each named by what it is ("cache",
/// "this run", "model", "backbone models/vgg16.onnx", ...).
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityCheck {
    left: String,
    right: String,
    differences: Vec<String>,
}

impl IdentityCheck {
    /// A comparison of `left` against `right` that has found nothing yet.
    pub fn new(left: impl Into<String>, right: impl Into<String>) -> IdentityCheck {
        IdentityCheck {
            left: left.into(),
            right: right.into(),
            differences: Vec::new(),
        }
    }

    /// Compares one setting (shown as JSON).
    pub fn field<T: Serialize + PartialEq + ?Sized>(
        mut self,
        name: &str,
        left: &T,
        right: &T,
    ) -> Self {
        if left != right {
            self.push(name, &json(left), &json(right));
        }
        self
    }

    /// Compares every setting of two identities, in the identity's field order (a setting
    /// written by one side only, such as `unlabeled`, differs too).
    pub fn all(mut self, left: &Identity, right: &Identity) -> Self {
        let (left, right) = (json_object(left), json_object(right));
        let only_left = left.keys().filter(|k| !right.contains_key(*k));
        for name in right.keys().chain(only_left) {
            let (old, new) = (left.get(name), right.get(name));
            // A setting one side does not write reads as null, as serde's defaults do.
            let null = serde_json::Value::Null;
            if old.unwrap_or(&null) != new.unwrap_or(&null) {
                let shown =
                    |v: Option<&serde_json::Value>| v.map_or("none".into(), |v| v.to_string());
                self.push(name, &shown(old), &shown(new));
            }
        }
        self
    }

    /// Compares what decides a classifier's input columns: the backbone's bytes, the layers
    /// and pooling of the representations, the preprocessing and the row length.
    pub fn features(mut self, left: &Identity, right: &Identity) -> Self {
        self = self.field("model_sha256", &left.model_sha256, &right.model_sha256);
        if left.representations() != right.representations() {
            self.push(
                "layers and pooling",
                &left.features_label(),
                &right.features_label(),
            );
        }
        self.field("preprocessing", &left.preprocessing, &right.preprocessing)
            .field("dims", &left.dims, &right.dims)
    }

    fn push(&mut self, name: &str, left: &str, right: &str) {
        self.differences.push(format!(
            "{name} differs: {} has {left}, {} has {right}",
            self.left, self.right
        ));
    }

    /// Whether nothing differs.
    fn is_same(&self) -> bool {
        self.differences.is_empty()
    }

    /// `Ok` when nothing differs, else every difference, `; `-separated, for the caller's error.
    pub fn result(self) -> Result<(), String> {
        if self.is_same() {
            Ok(())
        } else {
            Err(self.differences.join("; "))
        }
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("settings serialise")
}

fn json_object(identity: &Identity) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(identity).expect("identity serialises") {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an identity serialises to an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_difference_is_named_with_both_sides() {
        let check = IdentityCheck::new("cache", "model")
            .field("seed", &7u64, &8u64)
            .field("layers", &["a"], &["a"]);
        assert_eq!(
            check.result().unwrap_err(),
            "seed differs: cache has 7, model has 8"
        );
        assert!(IdentityCheck::new("a", "b")
            .field("x", "same", "same")
            .result()
            .is_ok());
    }
}
