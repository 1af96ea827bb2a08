"""Reference for `tlearn model quantize` (used by tests/quantize.rs): ONNX Runtime's own Python
quantiser on the same fp32 model and the same calibration images, and the features of the fp32
model, tlearn's int8 model and Python's int8 model side by side.

Python's model: onnxruntime.quantization.quantize_static, QDQ format, per-channel int8 weights,
uint8 activations, MinMax calibration. Images are preprocessed here with PIL and numpy (caffe:
shorter side to SIZE, centre crop, BGR minus the ImageNet mean), independently of tlearn.

usage: quantize_reference.py FP32.onnx TLEARN_INT8.onnx CALIB_DIR EVAL_DIR SIZE LAYER[,LAYER] OUT.json
CALIB_DIR and EVAL_DIR are folders of class folders; every image in CALIB_DIR calibrates.
OUT.json: per evaluation image, the cosine of the average-pooled LAYERs between each pair of
models; the relative difference of every scale both int8 models name alike.
"""
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnx import numpy_helper
from PIL import Image

MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def images(root):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                  if f.lower().endswith((".jpg", ".jpeg", ".png")))


def preprocess(path, size):
    """The documented rule, done by PIL: shorter side to size (half up), centre crop, caffe."""
    full = Image.open(path).convert("RGB")
    w, h = full.size
    m = min(w, h)
    W, H = (2 * w * size + m) // (2 * m), (2 * h * size + m) // (2 * m)
    left, top = (W - size) // 2, (H - size) // 2
    crop = full.resize((W, H), Image.BILINEAR).crop((left, top, left + size, top + size))
    bgr = np.asarray(crop, dtype=np.float32)[:, :, ::-1] - MEAN_BGR
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])


class Reader(CalibrationDataReader):
    def __init__(self, paths, size):
        self.inputs = iter([{"input": preprocess(p, size)} for p in paths])

    def get_next(self):
        return next(self.inputs, None)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def pooled(sess, x, layers):
    outs = sess.run(layers, {"input": x})
    return np.concatenate([o[0].mean(axis=(1, 2)) for o in outs])


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def scales(path):
    return {t.name: numpy_helper.to_array(t).astype(np.float64)
            for t in onnx.load(path).graph.initializer if t.name.endswith("_scale")}


def main():
    fp32, ours, calib, evaluate, size, layers, out = sys.argv[1:8]
    size, layers = int(size), layers.split(",")
    python_int8 = os.path.join(os.path.dirname(out), "python-int8.onnx")
    start = time.time()
    quantize_static(fp32, python_int8, Reader(images(calib), size), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    seconds = time.time() - start
    models = {"fp32": session(fp32), "tlearn": session(ours), "python": session(python_int8)}
    pairs = [("fp32", "tlearn"), ("fp32", "python"), ("tlearn", "python")]
    result = {"calibration_images": len(images(calib)), "python_quantize_seconds": seconds,
              "eval_images": [], **{f"cos_{a}_{b}": [] for a, b in pairs}}
    for path in images(evaluate):
        x = preprocess(path, size)
        feats = {k: pooled(s, x, layers) for k, s in models.items()}
        result["eval_images"].append(os.path.relpath(path, evaluate))
        for a, b in pairs:
            result[f"cos_{a}_{b}"].append(cosine(feats[a], feats[b]))
    ours_scales, python_scales = scales(ours), scales(python_int8)
    shared = sorted(set(ours_scales) & set(python_scales))
    diffs = {n: float(np.max(np.abs(ours_scales[n] - python_scales[n]) / np.abs(python_scales[n])))
             for n in shared if ours_scales[n].shape == python_scales[n].shape}
    result["scales_compared"] = len(diffs)
    result["scale_rel_diff"] = diffs
    result["bytes"] = {"tlearn": os.path.getsize(ours), "python": os.path.getsize(python_int8)}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
