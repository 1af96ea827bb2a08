"""Independent reference for tlearn's logistic solvers (used by tests/classify.rs): fits
scikit-learn's LogisticRegression (lbfgs, tolerance 1e-8, many iterations) on the same
standardised rows and prints the objective C * sum(log loss) + |W|^2 / 2 of its solution
(intercepts not penalised), computed here in float64.

usage: logistic_reference.py X.f32 Y.txt ROWS COLS C multinomial|one-vs-all
X.f32 holds the rows as little-endian float32, row-major; Y.txt one class index per line.
"""
import sys
import warnings

import numpy as np
from scipy.special import log_expit, logsumexp
from sklearn.linear_model import LogisticRegression


def main():
    x_path, y_path, rows, cols, c, mode = sys.argv[1:7]
    rows, cols, c = int(rows), int(cols), float(c)
    x = np.fromfile(x_path, dtype="<f4").reshape(rows, cols).astype(np.float64)
    y = np.loadtxt(y_path, dtype=np.int64).reshape(-1)
    warnings.simplefilter("error")  # a solver that stops early must fail the test, not warn
    if mode == "multinomial":
        fit = LogisticRegression(C=c, tol=1e-8, max_iter=100_000).fit(x, y)
        z = x @ fit.coef_.T + fit.intercept_
        loss = np.sum(logsumexp(z, axis=1) - z[np.arange(rows), y])
        penalty = 0.5 * np.sum(fit.coef_**2)
    else:
        loss, penalty = 0.0, 0.0
        for k in range(int(y.max()) + 1):
            t = (y == k).astype(np.int64)
            fit = LogisticRegression(C=c, tol=1e-8, max_iter=100_000).fit(x, t)
            z = x @ fit.coef_[0] + fit.intercept_[0]
            loss += -np.sum(log_expit(np.where(t == 1, z, -z)))
            penalty += 0.5 * np.sum(fit.coef_**2)
    print(float(c * loss + penalty))


main()
