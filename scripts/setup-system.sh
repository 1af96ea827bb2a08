#!/usr/bin/env bash
# System libraries the build needs: HDF5 (for the hdf5-metno crate) and pkg-config; and Slurm,
# optional, for the test that runs sharded extraction on a real one-node cluster (tests/slurm.rs);
# and Chromium, optional, for the test that opens the HTML reports in a real browser
# (tests/browser.rs).
set -euo pipefail
missing=()
pkg-config --exists hdf5 2>/dev/null || [ -f /usr/include/hdf5/serial/hdf5.h ] || missing+=(libhdf5-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
optional=()
for program in slurmctld slurmd sbatch; do
  command -v $program >/dev/null || { optional=(slurmctld slurmd slurm-client); break; }
done
command -v chromium >/dev/null || optional+=(chromium)
[ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  [ ${#optional[@]} -eq 0 ] || echo "note: ${optional[*]} not installed; the tests that need them are skipped (as root: apt-get install --no-install-recommends ${optional[*]})" >&2
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "error: missing ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} ${optional[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
[ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}" >/dev/null
[ ${#optional[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null
