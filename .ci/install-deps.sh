#!/usr/bin/env bash
# Installs skein's build and test dependencies from Debian packages.
# Idempotent: packages already present are skipped; apt runs only when something is missing.
# Extra package names given as arguments are installed too (e.g. bible-kjv for the quick start).
set -euo pipefail
PKGS=(
  g++ cmake ninja-build pkg-config
  libopenblas-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev
  libyaml-cpp-dev
  libboost-program-options-dev
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libdnnl-dev ocl-icd-opencl-dev   # dnnl-config.cmake finds OpenCL (a Recommends, skipped by --no-install-recommends)
  nlohmann-json3-dev
  zlib1g-dev libzstd-dev
  libpcre2-dev libutf8proc-dev
  "$@"
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
