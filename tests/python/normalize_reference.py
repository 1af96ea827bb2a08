"""Independent reference for tlearn's feature normalisations (used by tests/classify.rs):
reads float32 rows, normalises each column block of each row in float64 with NumPy and
writes the result as float32.

usage: normalize_reference.py X.f32 ROWS COLS none|l2|power BLOCKS OUT.f32
BLOCKS: the blocks' widths, comma-separated (they add up to COLS). "l2" divides each block by
its Euclidean norm; "power" takes sign(x) * sqrt(|x|) of every value first. An all-zero block
stays zero.
"""
import sys

import numpy as np


def main():
    x_path, rows, cols, how, widths, out = sys.argv[1:7]
    rows, cols = int(rows), int(cols)
    x = np.fromfile(x_path, dtype="<f4").reshape(rows, cols).astype(np.float64)
    widths = [int(w) for w in widths.split(",")]
    assert sum(widths) == cols, "the blocks cover the row"
    if how != "none":
        if how == "power":
            x = np.sign(x) * np.sqrt(np.abs(x))
        start = 0
        for w in widths:
            block = x[:, start : start + w]
            norm = np.linalg.norm(block, axis=1, keepdims=True)
            x[:, start : start + w] = block / np.where(norm > 0, norm, 1.0)
            start += w
    x.astype("<f4").tofile(out)


main()
