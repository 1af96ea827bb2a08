#!/usr/bin/env python3
"""The rows of docs/levers.md's linear tables from `tlearn train` reports (`make levers`).

Usage: scripts/levers-table.py REPORTS_DIR [ROW ...] > table.md
Each ROW is a run under REPORTS_DIR (ROW/report.json); without ROWs, every run there, by name.
Prints one markdown row per run: validation % and test % as mean ± sample std over the splits,
the test accuracy per split and the C (or fine-tuning epoch) chosen per split, as the tables show them.
"""

import json
import statistics
import sys
from pathlib import Path


def mean_std(values):
    """'mean ± sample std' in %, two decimals."""
    pct = [100 * v for v in values]
    std = statistics.stdev(pct) if len(pct) > 1 else 0.0
    return f"{statistics.mean(pct):.2f} ± {std:.2f}"


def row(report_dir):
    """One markdown row of the run whose report is in `report_dir`."""
    r = json.loads((report_dir / "report.json").read_text())
    splits = r["splits"]
    val = [s["val_accuracy"] for s in splits]
    test = [s["metrics"]["accuracy"] for s in splits]
    per_split = " / ".join(f"{100 * t:.2f}" for t in test)
    chosen = " / ".join(str(s["chosen"]) for s in splits)
    return f"| {r['run']} | {mean_std(val)} | {mean_std(test)} | {per_split} | {chosen} |"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    names = sys.argv[2:] or sorted(p.parent.name for p in root.glob("*/report.json"))
    print("| run | validation % | test % | test per split | chosen per split (C or epoch) |")
    print("|---|---|---|---|---|")
    for name in names:
        print(row(root / name))


if __name__ == "__main__":
    main()
