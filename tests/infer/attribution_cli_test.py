#!/usr/bin/env python3
"""`longctx generate --attribution` on SmolLM2-135M-Instruct, greedy.

  python3 tests/infer/attribution_cli_test.py BUILD/longctx SOURCE_DIR

A prompt of facts and a question about one of them: the JSON lists prompt lines with their share
of the answer's attention; shares lie in [0, 1] and sum to at most 1, the line numbers and texts
are the prompt's, the answer is the fact, and among the fact lines the one it came from draws the
most attention. The same run without --attribution gives the same text.
"""
import json
import os
import subprocess
import sys

BIN, SRC = sys.argv[1], sys.argv[2]
MODEL = os.path.join(SRC, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: longctx {' '.join(args)[:200]}: {r.stderr.strip()}")
    return r.stdout


if not os.path.exists(MODEL):
    sys.exit(f"FAIL: {MODEL} is missing: run `bash scripts/fetch_model.sh`")
prompt = ("Facts:\nThe sky on Mars is butterscotch.\nBananas are berries.\nThe password is swordfish.\n"
          "Question: what is the password? Answer:")
common = ["-m", MODEL, "-p", prompt, "-n", "12", "--temp", "0", "-t", "2", "--json"]
o = json.loads(run("generate", *common, "--attribution"))
plain = json.loads(run("generate", *common))
lines = prompt.split("\n")
att = o["attribution"]
check(o["text"] == plain["text"] and "swordfish" in o["text"], f"the answer {o['text'][:30]!r} is the same without attribution")
check(all(0 <= a["share"] <= 1 for a in att) and sum(a["share"] for a in att) <= 1 + 1e-9, "shares lie in [0, 1], sum <= 1")
check(all(lines[a["line"] - 1] == a["text"] for a in att), "line numbers and texts are the prompt's")
share = {a["line"]: a["share"] for a in att}
check(share.get(4, 0) > max(share.get(2, 0), share.get(3, 0)),
      f"the password's line draws more attention than the other facts ({[round(share.get(i, 0), 3) for i in (2, 3, 4)]})")
if failures:
    sys.exit(f"{len(failures)} check(s) failed")
