"""scikit-learn on the rows tlearn trains on: the reference for `tlearn train logistic`.

Reads a cache exported by `tlearn cache export --npy DIR` and, for each split asked, fits
scikit-learn's LogisticRegression (lbfgs, multinomial) with C on the rows tlearn would use
(training rows with their augmented copies; with --refit-with-validation also the validation
rows and copies), standardised as tlearn does (training-row mean and population standard
deviation, 1 for a constant column), then scores the test images (originals, no TTA). Prints
one JSON line per split with the accuracy, the objective C * sum(log loss) + |W|^2 / 2, and
the iterations used.

usage: logistic_reference.py DIR C [--refit-with-validation] [--max-iter N] [--splits 0,1,2]
"""
import argparse
import csv
import json
import time
import warnings

import numpy as np
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

TRAIN, VAL, TEST = 0, 1, 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("c", type=float)
    ap.add_argument("--refit-with-validation", action="store_true")
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--splits", default="0,1,2")
    args = ap.parse_args()
    x_all = np.load(f"{args.dir}/features.npy", mmap_mode="r")
    with open(f"{args.dir}/rows.csv") as f:
        rows = list(csv.DictReader(f))
    done = np.array([r["status"] == "done" for r in rows])
    label = np.array([int(r["label"]) for r in rows])
    copy = np.array([int(r["copy"]) for r in rows])
    for split in map(int, args.splits.split(",")):
        part = np.array([int(r[f"split_{split}"]) for r in rows])
        fit_parts = [TRAIN, VAL] if args.refit_with_validation else [TRAIN]
        fit_rows = np.flatnonzero(done & np.isin(part, fit_parts))
        test_rows = np.flatnonzero(done & (part == TEST) & (copy == 0))
        x = np.asarray(x_all[fit_rows], dtype=np.float64)
        mean = x.mean(axis=0)
        var = np.maximum((x * x).mean(axis=0) - mean * mean, 0.0)
        scale = np.where(var > 1e-12, np.sqrt(var), 1.0)
        x = (x - mean) / scale
        y = label[fit_rows]
        start = time.time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            fit = LogisticRegression(C=args.c, max_iter=args.max_iter).fit(x, y)
        seconds = time.time() - start
        z = x @ fit.coef_.T + fit.intercept_
        objective = args.c * np.sum(logsumexp(z, axis=1) - z[np.arange(len(y)), y])
        objective += 0.5 * np.sum(fit.coef_**2)
        xt = (np.asarray(x_all[test_rows], dtype=np.float64) - mean) / scale
        accuracy = float(np.mean(fit.predict(xt) == label[test_rows]))
        print(json.dumps({
            "split": split, "fit_rows": len(fit_rows), "test_images": len(test_rows),
            "test_accuracy": accuracy, "objective": objective, "iterations": int(fit.n_iter_[0]),
            "converged": not caught, "fit_seconds": round(seconds, 1),
        }), flush=True)


main()
