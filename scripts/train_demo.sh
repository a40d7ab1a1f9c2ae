#!/usr/bin/env bash
# Training demo: on a fresh machine, installs what is missing, builds, trains the `tiny`
# preset on the King James Bible and prints a sample from it.
# STEPS (default 600) sets the training length; about 3 minutes on 2 cores with bf16 products
# (a CPU with AMX-BF16), about 7 in fp32.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target longctx
bash scripts/corpus.sh
./build/longctx train --preset tiny --data data/kjv.txt --steps "${STEPS:-600}" --eval-every 200 \
  --save-every 500 -o run/tiny.gguf
./build/longctx generate -m run/tiny.gguf -p "In the beginning" -n 120 --temp 0.8 --top-k 40 --top-p 0.95 --seed 1
