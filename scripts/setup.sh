#!/usr/bin/env bash
# Installs the Debian packages longctx needs to build, test and benchmark.
# Idempotent: installs only what is missing. Run as root (or with sudo).
set -euo pipefail
source "$(dirname "$0")/install_missing.sh"
pkgs=(cmake ninja-build g++ pkg-config
      libopenblas-dev libhwy-dev libcli11-dev nlohmann-json3-dev libpcre2-dev
      libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libfaiss-dev
      clang libclang-rt-14-dev libopenmpi-dev openmpi-bin
      bible-kjv python3-torch python3-numpy python3-matplotlib)
apt_install_missing setup "${pkgs[@]}"

# Python packages for tests and goldens (PyPI, for the default python3): Hugging Face
# `tokenizers` (tests/tokenizer/make_hf_golden.py) and `gguf` (reading GGUF files in Python).
pip_install_missing setup tokenizers gguf
