#!/usr/bin/env bash
# Installs what `longctx serve`'s tests need: Debian's headless Chromium and its driver (the
# browser test of the web chat page, tests/serve/webui_test.py) and the pip packages `selenium`
# (drives the browser) and `openai` (the official client, talking to the server), and what
# llama-cpp-python's own OpenAI server needs (the reference of bench/serve_bench.py).
# Idempotent: installs only what is missing. Run as root (or with sudo).
set -euo pipefail
source "$(dirname "$0")/install_missing.sh"
apt_install_missing setup_serve chromium chromium-driver
pip_install_missing setup_serve selenium openai fastapi uvicorn sse_starlette starlette_context pydantic_settings
