#!/usr/bin/env python3
"""Probe: does pooling a layer over a grid of regions beat global pooling and the flattened map?

The probe that led to `avg2x2` / `max2x2` (docs/levers.md, "Pooling over the map's quarters").
Reads a tlearn cache of flattened maps (`tlearn features --repr block3_pool:flatten,
block4_pool:flatten,block5_pool:flatten --augment none`), pools each map over an n x n grid of
regions (adaptive bins, as PyTorch's AdaptiveMaxPool2d: bin i covers floor(i*H/n) ..
ceil((i+1)*H/n)), and scores each feature set as tlearn's linear choice does: standardisation
fitted on the training rows, multinomial logistic regression (scikit-learn, lbfgs), C from
tlearn's grid chosen per split on validation images, the test images scored by a refit on
training + validation rows. Originals only: no copies, no TTA.

usage: quarters-probe.py CACHE --sets "SET;SET;..." [--json OUT.json]
SET: LAYER:avg|max:N joined by "+"; N = 1 global pooling, 2 the quarters, 3 a 3 x 3 grid,
0 the flattened map (e.g. "block4_pool:max:2+block5_pool:max:2").
Needs h5py, numpy and scikit-learn (the project's .venv).
"""
import argparse
import json
import time
import warnings

import h5py
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

C_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
TRAIN, VAL, TEST = 0, 1, 2
CHANNELS = {"block3_pool": 256, "block4_pool": 512, "block5_pool": 512}  # VGG16's


def load(path):
    """The cache's labels and splits, and each flattened layer as N x C x H x W."""
    with h5py.File(path, "r") as f:
        cols = {c["repr"]: c for c in json.loads(f.attrs["columns"])}
        meta = {k: f[k][:] for k in ("label", "split", "status", "copy")}
        assert np.all(meta["status"] == 1), "unfinished cache"
        maps = {}
        for r, c in cols.items():
            layer = r.split(":")[0]
            ch = CHANNELS[layer]
            side = int(round(((c["end"] - c["start"]) / ch) ** 0.5))
            maps[layer] = f["features"][:, c["start"]:c["end"]].reshape(-1, ch, side, side)
    return meta, maps


def grid(maps, n, how):
    """Each map's channels pooled (`how`: max or avg) over n x n regions, channel-major."""
    h = maps.shape[2]
    out = []
    for i in range(n):
        for j in range(n):
            a, b = (i * h) // n, -((-(i + 1) * h) // n)
            c, d = (j * h) // n, -((-(j + 1) * h) // n)
            region = maps[:, :, a:b, c:d]
            out.append(region.max(axis=(2, 3)) if how == "max" else region.mean(axis=(2, 3)))
    return np.stack(out, axis=2).reshape(len(maps), -1)


def fit(c, x, y):
    """Scaler and logistic regression fitted on rows `x`, labels `y`."""
    s = StandardScaler().fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = LogisticRegression(C=c, max_iter=500).fit(s.transform(x), y)
    return s, m


def acc(f, x, y):
    """Accuracy of the fitted pair `f` on rows `x`."""
    s, m = f
    return float((m.predict(s.transform(x)) == y).mean())


def one_split(x, meta, k):
    """C chosen on validation (training-only fits), then the refit's test accuracy."""
    part, y = meta["split"][:, k], meta["label"]
    tr, va, te = (np.flatnonzero(part == p) for p in (TRAIN, VAL, TEST))
    best = None
    for c in C_GRID:
        a = acc(fit(c, x[tr], y[tr]), x[va], y[va])
        if best is None or a > best[1]:
            best = (c, a)
    rf = np.concatenate([tr, va])
    return best[0], best[1], acc(fit(best[0], x[rf], y[rf]), x[te], y[te])


def main():
    """Scores every set of --sets on every split of the cache."""
    p = argparse.ArgumentParser()
    p.add_argument("cache")
    p.add_argument("--sets", required=True, help="semicolon-separated sets of layer:pool:n (n=0 flatten)")
    p.add_argument("--json")
    a = p.parse_args()
    meta, maps = load(a.cache)
    results = []
    for spec in a.sets.split(";"):
        parts = []
        for item in spec.split("+"):
            layer, how, n = item.split(":")
            n = int(n)
            m = maps[layer]
            parts.append(m.reshape(len(m), -1) if n == 0 else grid(m, n, how))
        x = np.hstack(parts).astype(np.float64)
        t = time.monotonic()
        per = [one_split(x, meta, k) for k in range(meta["split"].shape[1])]
        v = 100 * np.array([s[1] for s in per])
        te = 100 * np.array([s[2] for s in per])
        r = dict(set=spec, dims=x.shape[1], val=v.tolist(), test=te.tolist(), c=[s[0] for s in per],
                 seconds=time.monotonic() - t)
        results.append(r)
        print(f"{spec:45} {x.shape[1]:6} val {v.mean():.2f} ± {v.std(ddof=1):.2f}  test {te.mean():.2f} ± {te.std(ddof=1):.2f}"
              f"  C {r['c']}  {r['seconds']:.0f}s", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cache": a.cache, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
