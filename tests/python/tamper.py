"""Damaged copies of a tlearn cache, one per way a file can be cut, widened or edited by hand
(used by tests/safety.rs). Every copy keeps a valid HDF5 structure, so only tlearn's own
checks can catch it.

usage: tamper.py GOOD.h5 OUT_DIR   (writes OUT_DIR/<case>.h5 and prints the case names)
"""
import json
import shutil
import sys

import h5py
import numpy as np


def replace(f, name, data):
    """Replaces dataset `name` with `data` (a new shape or values)."""
    del f[name]
    f[name] = data


def edit_identity(f, **changes):
    identity = json.loads(f.attrs["identity"])
    identity.update(changes)
    f.attrs["identity"] = json.dumps(identity)


CASES = {
    "label_99": lambda f: f["label"].__setitem__(0, 99),
    "label_minus_1": lambda f: f["label"].__setitem__(1, -1),
    "class_names_short": lambda f: replace(
        f, "class_names", np.array(f["class_names"][:1], dtype=h5py.string_dtype())
    ),
    "features_fewer_rows": lambda f: replace(f, "features", f["features"][:-2]),
    "features_narrower": lambda f: replace(f, "features", f["features"][:, :-1]),
    "features_wider": lambda f: replace(
        f, "features", np.hstack([f["features"][:], f["features"][:, :1]])
    ),
    "labels_fewer": lambda f: replace(f, "label", f["label"][:-1]),
    "paths_fewer": lambda f: replace(
        f, "path", np.array(f["path"][:-1], dtype=h5py.string_dtype())
    ),
    "split_code_7": lambda f: f["split"].__setitem__((2, 0), 7),
    "split_columns_cut": lambda f: replace(f, "split", f["split"][:, :1]),
    "identity_splits": lambda f: edit_identity(f, splits=5),
    "identity_dims": lambda f: edit_identity(f, dims=3),
    "status_9": lambda f: f["status"].__setitem__(0, 9),
    "nan": lambda f: f["features"].__setitem__((4, 0), np.nan),
    "copy_beyond": lambda f: f["copy"].__setitem__(0, 60000),
}


def main(good, out_dir):
    for case, tamper in CASES.items():
        path = f"{out_dir}/{case}.h5"
        shutil.copyfile(good, path)
        with h5py.File(path, "r+") as f:
            tamper(f)
        print(case)


if __name__ == "__main__":
    main(*sys.argv[1:])
