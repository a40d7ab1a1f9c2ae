#!/usr/bin/env bash
# Installs what `longctx serve`'s tests need: Debian's headless Chromium and its driver (the
# browser test of the web chat page, tests/serve/webui_test.py) and the pip packages `selenium`
# (drives the browser) and `openai` (the official client, talking to the server), and what
# llama-cpp-python's own OpenAI server needs (the reference of bench/serve_bench.py).
# Idempotent: installs only what is missing. Run as root (or with sudo).
set -euo pipefail
pkgs=(chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup_serve: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup_serve: chromium and chromium-driver present"
fi

py_pkgs=(selenium openai fastapi uvicorn sse_starlette starlette_context pydantic_settings)
py_missing=()
for p in "${py_pkgs[@]}"; do
  python3 -c "import $p" 2>/dev/null || py_missing+=("${p//_/-}")
done
if ((${#py_missing[@]})); then
  echo "setup_serve: pip installing ${py_missing[*]}"
  python3 -m pip install --quiet "${py_missing[@]}"
else
  echo "setup_serve: python packages present"
fi
