"""Classify images with a file written by `tlearn export` (Python: Pillow, NumPy, onnxruntime).

    python classify.py classifier.onnx photo.jpg ...   # one JSON line per image
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def pixels(path, size):
    """The image as tlearn predict sees it: shorter side to `size` (rounded half up), centre crop."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    m = min(w, h)
    W, H = (2 * w * size + m) // (2 * m), (2 * h * size + m) // (2 * m)
    left, top = (W - size) // 2, (H - size) // 2
    img = img.resize((W, H), Image.BILINEAR).crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def main(model, paths):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    classes = json.loads(session.get_modelmeta().custom_metadata_map["classes"])
    size = session.get_inputs()[0].shape[1]
    batch = np.stack([pixels(p, size) for p in paths])  # uint8 [N, size, size, 3]
    probabilities, label = session.run(["probabilities", "label"], {"images": batch})[:2]
    for path, p, k in zip(paths, probabilities, label):
        print(json.dumps({"path": path, "predicted": classes[k], "probabilities": p.tolist()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
