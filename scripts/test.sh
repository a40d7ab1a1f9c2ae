#!/usr/bin/env bash
# README command 2 (and what .ci/run calls): installs what is missing (llama.cpp through pip's
# llama-cpp-python included: about 10 minutes of building on a fresh machine), builds, runs every test
# through CTest and the extrapolation and CoLT5 experiments at smoke size; then the unit tests again
# under ASan + UBSan, then each libFuzzer target for FUZZ_SECONDS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/corpus.sh
bash scripts/fetch_model.sh
bash scripts/setup_llamacpp.sh
bash scripts/setup_hf.sh
bash scripts/setup_serve.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$jobs"
LONGCTX_CORPUS="$PWD/data/kjv.txt" ctest --test-dir build --output-on-failure -j "$jobs"
# The context-extension experiment end to end at smoke size: it must complete and write its table.
bash experiments/extrapolation/run.sh --quick > build/extrapolation-quick.log 2>&1 ||
  { tail -30 build/extrapolation-quick.log; echo "experiments/extrapolation/run.sh --quick failed"; exit 1; }
grep -q '^| alibi |' run/experiments/extrapolation/extrapolation.md
echo "extrapolation --quick: table written (run/experiments/extrapolation/extrapolation.md)"
bash experiments/colt5/run.sh --quick > build/colt5-quick.log 2>&1 ||
  { tail -30 build/colt5-quick.log; echo "experiments/colt5/run.sh --quick failed"; exit 1; }
grep -q '^| 512 | colt5 |' run/experiments/colt5/colt5.md
echo "colt5 --quick: table written (run/experiments/colt5/colt5.md)"

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  # -g1: line tables (what the sanitizers' stack traces print) without full debug info, which made
  # this build ~30% longer.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLONGCTX_SANITIZE=ON -DLONGCTX_BENCH=OFF \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" > /dev/null
  cmake --build build-asan -j "$jobs"
  # The heaviest end-to-end scripts (1,000 MiniLM embeddings, whole-corpus indexes, retrieval
  # with SmolLM2 answers, the tokenizer CLI against HF over ~2,300 strings: one process each, 14
  # minutes under ASan; the llama.cpp logit comparisons, ~4 minutes) and the HNSW recall test
  # (100,000 vectors, its time in FAISS, which is not instrumented) run in the release build only:
  # under ASan they would take most of the budget; their C++ paths run here through the unit tests
  # and the lighter scripts.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LSAN_OPTIONS="suppressions=$PWD/scripts/lsan_suppressions.txt" \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -E 'CorpusRoundTrip|Kjv|GlitchTokens|hf_bert_embeddings|rag_index|rag_ask|cli_tokenize_vs_tokenizers|llamacpp_compare_logits|AnnRecall'
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLONGCTX_FUZZ=ON \
    -DLONGCTX_TESTS=OFF -DLONGCTX_BENCH=OFF -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" > /dev/null
  cmake --build build-fuzz -j "$jobs"
  for target in build-fuzz/fuzz/*_fuzz; do
    name=$(basename "$target")
    corpus_dir="fuzz/corpus/${name%%_*}"
    mkdir -p "$corpus_dir" build-fuzz/work/"$name"
    echo "fuzz: $name for ${FUZZ_SECONDS:-30} s"
    "$target" -max_total_time="${FUZZ_SECONDS:-30}" -print_final_stats=1 build-fuzz/work/"$name" "$corpus_dir" 2>&1 | tail -3
  done
fi
echo "all tests passed"
