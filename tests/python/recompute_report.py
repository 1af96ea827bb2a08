"""Recomputes every number of a tlearn report.json from its test predictions alone.

Usage: recompute_report.py REPORT.json
Independent of tlearn's Rust code: per split, the predicted class (first best score), accuracy,
top-5 accuracy, confusion matrix, per-class precision / recall / F1 and their macro means; over
splits, the summary's means and sample standard deviations, the summed confusion matrix, the
per-class table of all splits with its macro and weighted averages, and the misclassified list.
Prints what differs and exits 1, or prints "ok" and the number of values checked.
"""
import json
import sys

import numpy as np

report = json.load(open(sys.argv[1]))
k = len(report["class_names"])
errors = []
checked = 0


# Accuracy comes from linfa in f32, so values agree to about 1e-8; reports show four decimals.
def same(what, got, want, tol=1e-6):
    global checked
    checked += 1
    if not np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), atol=tol, rtol=0):
        errors.append(f"{what}: report says {got}, recomputed {want}")


def per_class(confusion):
    tp = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(k), where=both > 0)
    return precision, recall, f1, support


per_split = {m: [] for m in ["accuracy", "top5_accuracy", "macro_precision", "macro_recall", "macro_f1"]}
total = np.zeros((k, k), dtype=int)
wrong = []
for split in report["splits"]:
    preds = split["predictions"]
    same(f"split {split['split']} test images", split["test_images"], len(preds))
    scores = np.array([p["scores"] for p in preds], dtype=np.float32).reshape(len(preds), k)
    labels = np.array([p["label"] for p in preds], dtype=int)
    predicted = scores.argmax(axis=1)
    same(f"split {split['split']} predicted classes", [p["predicted"] for p in preds], predicted)
    own = scores[np.arange(len(preds)), labels]
    top5 = ((scores > own[:, None]).sum(axis=1) < 5).mean()
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    total += confusion
    precision, recall, f1, support = per_class(confusion)
    m = split["metrics"]
    values = {
        "accuracy": (predicted == labels).mean(),
        "top5_accuracy": top5,
        "macro_precision": precision.mean(),
        "macro_recall": recall.mean(),
        "macro_f1": f1.mean(),
    }
    for name, value in values.items():
        same(f"split {split['split']} {name}", m[name], value)
        per_split[name].append(value)
    same(f"split {split['split']} confusion", m["confusion"], confusion)
    for c, row in enumerate(m["per_class"]):
        same(f"split {split['split']} {row['name']}", [row["precision"], row["recall"], row["f1"], row["support"]],
             [precision[c], recall[c], f1[c], support[c]])
    wrong += [(split["split"], p["path"]) for p, ok in zip(preds, predicted == labels) if not ok]

for name, values in per_split.items():
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    same(f"summary {name}", [report["summary"][name]["mean"], report["summary"][name]["std"]], [np.mean(values), std])
same("summed confusion", report["confusion"], total)
precision, recall, f1, support = per_class(total)
for c, row in enumerate(report["per_class"]):
    same(f"all splits {row['name']}", [row["precision"], row["recall"], row["f1"], row["support"]],
         [precision[c], recall[c], f1[c], support[c]])
for name, weights in [("macro_avg", np.ones(k)), ("weighted", support.astype(float))]:
    avg = report["averages"][name]
    want = [np.average(v, weights=weights) if weights.sum() > 0 else 0.0 for v in (precision, recall, f1)]
    same(f"{name} average", [avg["precision"], avg["recall"], avg["f1"]], want)
same("misclassified images", len(report["misclassified"]), len(wrong))

if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"ok: {checked} values recomputed")
