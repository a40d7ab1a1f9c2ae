#!/usr/bin/env bash
# Installs llama.cpp as pip's llama-cpp-python (a pinned version, built from source for this CPU:
# about 10 minutes on 2 cores) for the llama.cpp comparison test (tests/llamacpp/) and the
# benchmark against llama.cpp (bench/model_bench.sh). Idempotent.
set -euo pipefail
version=0.3.36
if python3 -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$version')" 2>/dev/null; then
  echo "setup: llama-cpp-python $version present"
  exit 0
fi
echo "setup: building llama-cpp-python $version from source (about 10 minutes on 2 cores)"
CMAKE_ARGS="-DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  python3 -m pip install --quiet --no-binary llama-cpp-python "llama-cpp-python==$version"
