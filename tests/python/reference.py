"""Independent reference for tlearn's VGG16 features (used by tests/vgg16.rs).

It never touches tlearn's cut model or its Rust preprocessing maths: it runs the *original*
tf2onnx Keras model (NHWC input) with onnxruntime, preprocesses with numpy ("caffe": BGR,
0-255, minus the ImageNet mean), resizes with PIL, and reads tlearn's cache with h5py.

usage: reference.py ORIGINAL.onnx WORK_DIR CACHE_FLATTEN.h5 CACHE_AVG.h5 CACHE_QUARTERS.h5 OUT.json
CACHE_QUARTERS holds block4_pool:max2x2 then block5_pool:avg2x2 (each map's quarters).
WORK_DIR holds full_<i>.png (tlearn's decoded image) and crop_<i>.png (tlearn's 224 crop)
for the cache rows i = 0, 1, ...
"""
import json
import os
import sys

import h5py
import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
SIZE = 224
POOLS = {k: f"functional_1/block{k}_pool_1/MaxPool2d:0" for k in (4, 5)}


def original_session(path):
    """The original model with free height/width and the block pools as extra outputs."""
    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_param, dims[2].dim_param = "height", "width"
    for name in POOLS.values():
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def pil_crop(full):
    """The documented resize rule, done by PIL: shorter side to SIZE (half up), centre crop."""
    w, h = full.size
    m = min(w, h)
    W, H = (2 * w * SIZE + m) // (2 * m), (2 * h * SIZE + m) // (2 * m)
    left, top = (W - SIZE) // 2, (H - SIZE) // 2
    return full.resize((W, H), Image.BILINEAR).crop((left, top, left + SIZE, top + SIZE))


def quarters(m, reduce):
    """Each channel of `m` (C x H x W) reduced over 2 x 2 adaptive bins (PyTorch's
    AdaptiveMaxPool2d rule: bin i spans floor(i*H/2) .. ceil((i+1)*H/2)), reading order,
    channel-major."""
    c, h, w = m.shape
    out = np.empty((c, 2, 2), dtype=np.float64)
    for i in range(2):
        for j in range(2):
            rows = slice(i * h // 2, -(-(i + 1) * h // 2))
            cols = slice(j * w // 2, -(-(j + 1) * w // 2))
            out[:, i, j] = reduce(m[:, rows, cols], axis=(1, 2))
    return out.reshape(-1)


def rel_err(ours, ref):
    return float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-12))


def main():
    original, work, cache_flat, cache_avg, cache_quarters, out = sys.argv[1:7]
    session = original_session(original)
    with h5py.File(cache_flat, "r") as f:
        flat = f["features"][:]
        status = f["status"][:]
    with h5py.File(cache_avg, "r") as f:
        avg = f["features"][:]
    with h5py.File(cache_quarters, "r") as f:
        quartered = f["features"][:]
    result = {"rows": int(flat.shape[0]), "dims_flatten": int(flat.shape[1]), "dims_avg": int(avg.shape[1]),
              "dims_quarters": int(quartered.shape[1]), "rel_err_quarters": [],
              "status_done": int((status == 1).sum()), "rel_err_flatten": [], "rel_err_avg": [],
              "resize_max_abs_diff": 0, "resize_mean_abs_diff": []}
    for i in range(flat.shape[0]):
        crop = Image.open(os.path.join(work, f"crop_{i}.png")).convert("RGB")
        full = Image.open(os.path.join(work, f"full_{i}.png")).convert("RGB")
        diff = np.abs(np.asarray(pil_crop(full), dtype=np.int16) - np.asarray(crop, dtype=np.int16))
        result["resize_max_abs_diff"] = max(result["resize_max_abs_diff"], int(diff.max()))
        result["resize_mean_abs_diff"].append(float(diff.mean()))

        bgr = np.asarray(crop, dtype=np.float32)[:, :, ::-1] - MEAN_BGR
        outputs = session.run(list(POOLS.values()), {"input": bgr[None]})
        pools = dict(zip(POOLS, outputs))  # each NCHW, as tf2onnx computes internally
        ref_flat = pools[5][0].reshape(-1)
        ref_avg = np.concatenate([pools[4][0].mean(axis=(1, 2)), pools[5][0].mean(axis=(1, 2))])
        result["rel_err_flatten"].append(rel_err(flat[i], ref_flat))
        result["rel_err_avg"].append(rel_err(avg[i], ref_avg))
        ref_quarters = np.concatenate([quarters(pools[4][0], np.max), quarters(pools[5][0], np.mean)])
        result["rel_err_quarters"].append(rel_err(quartered[i], ref_quarters))
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
