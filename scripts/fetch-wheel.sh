#!/usr/bin/env bash
# Downloads one pinned PyPI wheel into .cache/wheels and checks its sha256.
# usage: scripts/fetch-wheel.sh NAME==VERSION FILE SHA256
set -euo pipefail
spec=$1 file=$2 sha=$3
dir=.cache/wheels
mkdir -p "$dir"
if [ ! -f "$dir/$file" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --platform manylinux_2_28_x86_64 \
    -d "$dir" "$spec" || { echo "error: could not download $spec from PyPI (is the package registry reachable?)" >&2; exit 1; }
fi
actual=$(sha256sum "$dir/$file" | cut -d' ' -f1)
if [ "$actual" != "$sha" ]; then
  echo "error: $dir/$file has sha256 $actual, expected $sha; delete it and retry" >&2
  exit 1
fi
