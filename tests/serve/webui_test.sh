#!/usr/bin/env bash
# The chat page in headless Chromium against a real server: starts `longctx serve` on SmolLM2,
# runs tests/serve/webui_test.py (type a question, see a streamed answer), stops the server.
# The server takes its port and slots from LONGCTX_PORT / LONGCTX_PARALLEL.
# Usage: webui_test.sh LONGCTX SOURCE_DIR [SCREENSHOT.png]. Exit 77 (skip) without Chromium.
set -uo pipefail
bin=$1 src=$2 shot=${3:-}
model="$src/models/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] || { echo "FAIL: $model is missing: run bash scripts/fetch_model.sh"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
# The port and the slots through the environment (every flag of serve has a LONGCTX_ variable).
LONGCTX_PORT=$port LONGCTX_PARALLEL=2 "$bin" serve -m "$model" --ctx 2048 > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "FAIL: the server exited"; exit 1; }
  sleep 0.1
done
python3 "$src/tests/serve/webui_test.py" --url "http://127.0.0.1:$port/" ${shot:+--screenshot "$shot"} \
  --question "What is the capital of France?"
rc=$?
[ $rc = 0 ] || cat "$log"
exit $rc
