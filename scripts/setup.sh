#!/usr/bin/env bash
# Installs the Debian packages longctx needs to build, test and benchmark.
# Idempotent: installs only what is missing. Run as root (or with sudo).
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config
      libopenblas-dev libhwy-dev libcli11-dev nlohmann-json3-dev libpcre2-dev
      libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev
      clang libclang-rt-14-dev
      bible-kjv python3-torch python3-numpy python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# Python packages for tests and goldens (PyPI, for the default python3): Hugging Face
# `tokenizers` (tests/tokenizer/make_hf_golden.py) and `gguf` (reading GGUF files in Python).
py_pkgs=(tokenizers gguf)
py_missing=()
for p in "${py_pkgs[@]}"; do
  python3 -c "import $p" 2>/dev/null || py_missing+=("$p")
done
if ((${#py_missing[@]})); then
  echo "setup: pip installing ${py_missing[*]}"
  python3 -m pip install --quiet "${py_missing[@]}"
fi
