#!/usr/bin/env bash
# Builds llama.cpp's own benchmark tool, llama-bench, from the llama.cpp sources that pip's
# llama-cpp-python (the same pinned version as scripts/setup_llamacpp.sh) vendors, natively for
# this CPU (ggml's default GGML_NATIVE=ON, as llama-cpp-python builds it), into
# build-llamabench/cmake/bin/llama-bench. bench/model_bench.sh runs it beside longctx and beside our
# Python harness (bench/llamacpp_model.py). About 5 minutes on 2 cores; idempotent.
#
#   bash bench/setup_llamabench.sh        # prints the path of llama-bench
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.3.36
dir=build-llamabench
bin="$dir/cmake/bin/llama-bench"
if [ -x "$bin" ] && [ "$(cat "$dir/version" 2>/dev/null)" = "$version" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$dir"
src="$dir/llama_cpp_python-$version"
if [ ! -d "$src/vendor/llama.cpp" ]; then
  echo "setup_llamabench: downloading the llama-cpp-python $version sources" >&2
  python3 -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$version" -d "$dir" >&2
  tar xzf "$dir/llama_cpp_python-$version.tar.gz" -C "$dir"
fi
echo "setup_llamabench: building llama-bench (about 5 minutes on 2 cores)" >&2
cmake -S "$src/vendor/llama.cpp" -B "$dir/cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DBUILD_SHARED_LIBS=OFF > "$dir/cmake.log" 2>&1 ||
  { tail -20 "$dir/cmake.log" >&2; echo "setup_llamabench: cmake configure failed" >&2; exit 1; }
cmake --build "$dir/cmake" --target llama-bench -j "$(nproc)" > "$dir/build.log" 2>&1 ||
  { tail -20 "$dir/build.log" >&2; echo "setup_llamabench: build failed" >&2; exit 1; }
echo "$version" > "$dir/version"
echo "$bin"
