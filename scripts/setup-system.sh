#!/usr/bin/env bash
# System packages: HDF5 (for the hdf5-metno crate) and pkg-config, which the build needs; with
# --test also Slurm (tests/slurm.rs runs sharded extraction on a real one-node cluster) and
# Chromium (tests/browser.rs opens the HTML reports in a real browser), which the tests need:
# those tests fail, saying how to install them, where they are missing. Installs what is
# missing when run as root (apt-get); otherwise says what to install and fails.
set -euo pipefail
missing=()
pkg-config --exists hdf5 2>/dev/null || [ -f /usr/include/hdf5/serial/hdf5.h ] || missing+=(libhdf5-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
tools=()
if [ "${1:-}" = "--test" ]; then
  for program in slurmctld slurmd sbatch; do
    command -v $program >/dev/null || { tools=(slurmctld slurmd slurm-client); break; }
  done
  command -v chromium >/dev/null || tools+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && [ ${#tools[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing ${missing[*]} ${tools[*]}; install them with: sudo apt-get install -y --no-install-recommends ${missing[*]} ${tools[*]} (or run $0 ${1:-} as root)" >&2
  exit 1
fi
echo "installing ${missing[*]} ${tools[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
[ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}" >/dev/null
[ ${#tools[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
