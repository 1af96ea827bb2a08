"""Averages the probabilities `examples/ensemble_probe.rs` wrote, to decide whether an ensemble
of linear models is worth building: each member alone, the equal-weight mean of the k best
members by validation, and Caruana's greedy forward selection (with replacement) on validation.
Every choice reads validation images only; test accuracy is printed beside it.

usage: python scripts/ensemble-probe.py MEMBERS.json [MORE.json ...]
"""
import json
import sys

import numpy as np


def load(paths):
    members = []
    for path in paths:
        with open(path) as f:
            found = json.load(f)
        if len(paths) > 1:  # name each member's cache: the same spec may come from two
            stem = path.rsplit("/", 1)[-1].removesuffix(".json")
            for m in found:
                m["spec"] = f"{stem} {m['spec']}"
        members += found
    return members


def accuracy(members, chosen, part):
    """Per-split accuracy (%) of the mean probability of `chosen` (indices, repeats allowed)."""
    per_split = []
    for s in range(len(members[0]["splits"])):
        images = [members[i]["splits"][s][part] for i in chosen]
        labels = np.array([label for label, _ in images[0]])
        for other in images[1:]:
            assert [label for label, _ in other] == list(labels), "members score other images"
        mean = sum(np.array([p for _, p in m]) for m in images) / len(chosen)
        per_split.append(100.0 * float((mean.argmax(1) == labels).mean()))
    return per_split


def row(members, name, chosen):
    val, test = accuracy(members, chosen, "val"), accuracy(members, chosen, "test")
    sd = lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    print(f"| {name} | {np.mean(val):.2f} ± {sd(val):.2f} | {np.mean(test):.2f} ± {sd(test):.2f} | "
          + " / ".join(f"{t:.2f}" for t in test) + " |")


def greedy(members, steps=8):
    chosen, best = [], -1.0
    for _ in range(steps):
        score = lambda i: np.mean(accuracy(members, chosen + [i], "val"))
        pick = max(range(len(members)), key=score)
        if score(pick) <= best:
            break
        chosen, best = chosen + [pick], score(pick)
    return chosen


def main():
    members = load(sys.argv[1:])
    by_val = sorted(range(len(members)), key=lambda i: -np.mean(accuracy(members, [i], "val")))
    print("| members | validation % | test % | test per split |")
    print("|---|---|---|---|")
    for i in by_val:
        row(members, members[i]["spec"], [i])
    for k in (2, 3):
        if k <= len(members):
            row(members, f"mean of the {k} best by validation", by_val[:k])
    chosen = greedy(members)
    row(members, "greedy selection on validation: " + ", ".join(members[i]["spec"] for i in chosen), chosen)


if __name__ == "__main__":
    main()
