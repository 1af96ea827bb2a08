#!/usr/bin/env python3
"""Probe (not a tlearn feature): do two input sizes' pooled features, concatenated, beat each alone?

Reads two tlearn caches of the same images extracted at two sizes (e.g. `tlearn auto --size 224`
and `--size 320` on the same data, seed, split and augmentation), checks that their rows are the
same images and copies in the same order, and compares, on the cache's own seeded splits:
  - each size alone, and both sizes' columns concatenated,
  - of the representations given (default: max-pooled block4 + block5),
  - with a linear SVM (scikit-learn's LinearSVC, squared hinge, one-vs-rest) and a multinomial
    logistic regression, each after standardisation fitted on the training rows,
  - C chosen per split on validation images (tlearn's grid; ties keep the smaller C), training
    rows = training images and their augmented copies (tlearn train's default),
  - test-time augmentation: an image's decision scores averaged over its original and its
    copies, for validation and test images alike (tlearn train --tta),
  - test images scored by a refit on training + validation rows with the chosen C
    (tlearn train --refit-with-validation).
Only validation accuracy may decide between the feature sets; test accuracy is printed to say
what the choice would have given.

Usage: scripts/multiscale-probe.py CACHE_A CACHE_B [--use block4_pool:max,block5_pool:max]
       [--classifiers svm,logistic] [--json OUT.json]
Needs h5py, numpy and scikit-learn (the project's .venv).
"""

import argparse
import json
import sys
import time
import warnings

import h5py
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

C_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]  # tlearn's DEFAULT_C_GRID
TRAIN, VAL, TEST = 0, 1, 2  # tlearn's Part codes in the cache's `split` dataset
DONE = 1  # tlearn's RowStatus::Done
ROW_KEYS = ["path", "copy", "image", "label", "split", "augment", "status"]


def load(path, reprs):
    """The cache's row metadata, its input size and the columns of `reprs`, concatenated."""
    with h5py.File(path, "r") as f:
        columns = {c["repr"]: c for c in json.loads(f.attrs["columns"])}
        missing = [r for r in reprs if r not in columns]
        if missing:
            sys.exit(f"{path}: no columns {missing}; it has {sorted(columns)}")
        rows = {k: f[k][:] for k in ROW_KEYS}
        feats = f["features"]
        blocks = [feats[:, columns[r]["start"] : columns[r]["end"]] for r in reprs]
        size = json.loads(f.attrs["preprocessing"])["size"]
    return rows, size, np.hstack(blocks).astype(np.float64)


def check_aligned(a, b, name_a, name_b):
    """Exits unless both caches hold the same images, copies, labels, splits and augmentations."""
    for key in ROW_KEYS:
        if a[key].shape != b[key].shape or not np.array_equal(a[key], b[key]):
            sys.exit(f"{name_a} and {name_b} differ in `{key}`: their rows are not the same images")
    if not np.all(a["status"] == DONE):
        sys.exit("some rows are not computed (status != done): finish the extraction first")


def make_model(kind, c):
    """The classifier `kind` at `c`."""
    if kind == "svm":
        # The primal solver (trust-region Newton): the dual one needs thousands of passes at large C.
        return LinearSVC(C=c, loss="squared_hinge", dual=False, max_iter=1000)
    return LogisticRegression(C=c, max_iter=1000)


def fit(kind, c, x, y):
    """Scaler and classifier fitted on rows `x`, labels `y`."""
    scaler = StandardScaler().fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_model(kind, c).fit(scaler.transform(x), y)
    return scaler, model


def tta_accuracy(fitted, x, rows, images, labels):
    """Accuracy over `images`, each scored as the mean of its rows' decision scores."""
    scaler, model = fitted
    scores = model.decision_function(scaler.transform(x[rows]))
    correct = 0
    for image in np.unique(images[rows]):
        mine = images[rows] == image
        predicted = model.classes_[np.argmax(scores[mine].mean(axis=0))]
        correct += int(predicted == labels[rows][mine][0])
    return correct / len(np.unique(images[rows]))


def one_split(kind, x, meta, split):
    """C chosen on validation (training-only fits), then the refit's test accuracy."""
    part, y, image = meta["split"][:, split], meta["label"], meta["image"]
    train, val, test = (np.flatnonzero(part == p) for p in (TRAIN, VAL, TEST))
    best = None
    for c in C_GRID:
        acc = tta_accuracy(fit(kind, c, x[train], y[train]), x, val, image, y)
        if best is None or acc > best[1]:  # strictly better: ties keep the smaller C
            best = (c, acc)
    refit_rows = np.concatenate([train, val])
    refit = fit(kind, best[0], x[refit_rows], y[refit_rows])
    return {"c": best[0], "val": best[1], "test": tta_accuracy(refit, x, test, image, y)}


def summary(per_split):
    """Mean and sample std (in %) of validation and test accuracy over the splits."""
    out = {}
    for key in ("val", "test"):
        v = 100 * np.array([s[key] for s in per_split])
        out[key] = {"mean": v.mean(), "std": v.std(ddof=1) if len(v) > 1 else 0.0, "per_split": list(v)}
    out["c"] = [s["c"] for s in per_split]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cache_a")
    p.add_argument("cache_b")
    p.add_argument("--use", default="block4_pool:max,block5_pool:max")
    p.add_argument("--classifiers", default="svm,logistic")
    p.add_argument("--json")
    args = p.parse_args()
    reprs = args.use.split(",")
    meta_a, size_a, xa = load(args.cache_a, reprs)
    meta_b, size_b, xb = load(args.cache_b, reprs)
    check_aligned(meta_a, meta_b, args.cache_a, args.cache_b)
    print(f"{len(xa)} aligned rows; {size_a} px: {xa.shape[1]} columns, {size_b} px: {xb.shape[1]}")
    sets = {f"{size_a}": xa, f"{size_b}": xb, f"{size_a}+{size_b}": np.hstack([xa, xb])}
    splits = meta_a["split"].shape[1]
    results = []
    for kind in args.classifiers.split(","):
        for name, x in sets.items():
            start = time.monotonic()
            s = summary([one_split(kind, x, meta_a, k) for k in range(splits)])
            s.update(classifier=kind, sizes=name, dims=x.shape[1], seconds=time.monotonic() - start)
            results.append(s)
            per = " / ".join(f"{v:.2f}" for v in s["test"]["per_split"])
            print(
                f"{kind:8} {name:8} {x.shape[1]:5} dims  val {s['val']['mean']:.2f} ± {s['val']['std']:.2f}"
                f"  test {s['test']['mean']:.2f} ± {s['test']['std']:.2f} ({per})  C {s['c']}"
                f"  {s['seconds']:.0f} s",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"caches": [args.cache_a, args.cache_b], "use": reprs, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
