#!/usr/bin/env bash
# Training past one process, measured on one machine (2 ranks on its 2 cores): the traffic and
# how much of it hides behind compute, not a speedup (two ranks share the cores one process uses).
#  Data parallel (`small`, batch 8 x ctx 256): one process with 2 threads, one with 1 thread (one
#    rank's compute), and `mpirun -np 2` with 1 thread each: tokens/s, gradient bytes all-reduced
#    per step, seconds in all-reduces per step and the part of them backward did not hide.
#  Sequence parallel (`tiny` with RoPE, batch 1 x one long window): one process with 2 threads
#    against `--seq-parallel 2` with 1 thread each: tokens/s, the largest process's peak resident
#    memory, ring bytes per step.
# Needs the corpus (scripts/corpus.sh) and OpenMPI (scripts/setup.sh).
# Usage: bench/dist_bench.sh [steps=20] [sp_ctx=8192]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
sp_ctx=${2:-8192}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
bin=./build/longctx
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=data/kjv.txt
[ -s "$corpus" ] || { echo "dist_bench: $corpus is missing (bash scripts/corpus.sh)" >&2; exit 1; }

# A tokenizer trained once: a one-step run writes it with its checkpoint.
"$bin" train --preset small --data "$corpus" --steps 1 --batch 2 --ctx 32 --eval-batches 1 -t 2 -o "$work/tok.gguf" --json > /dev/null
tok=(--tokenizer "$work/tok.gguf")

# Runs one training job; prints its summary line with "label" and "peak_rss_mib" (the largest
# process's, from GNU time) added.
run() {
  local label=$1
  shift
  /usr/bin/time -f "%M" -o "$work/rss" "$@" > "$work/out.jsonl"
  python3 - "$label" "$work/out.jsonl" "$work/rss" <<'PY'
import json, sys
label, out, rss = sys.argv[1:]
s = [json.loads(l) for l in open(out)][-1]
s["label"] = label
s["peak_rss_mib"] = int(open(rss).read().split()[-1]) / 1024
print(json.dumps(s))
PY
}

dp=("$bin" train --preset small "${tok[@]}" --data "$corpus" --batch 8 --ctx 256 --steps "$steps" --eval-every 0
    --eval-batches 1 --save-every 0 --json)
lines=()
lines+=("$(run "dp: 1 process x 2 threads" "${dp[@]}" -t 2 -o "$work/a.gguf")")
lines+=("$(run "dp: 1 process x 1 thread" "${dp[@]}" -t 1 -o "$work/b.gguf")")
lines+=("$(run "dp: 2 ranks x 1 thread" mpirun -np 2 "${dp[@]}" -t 1 -o "$work/c.gguf")")
sp=("$bin" train --preset tiny --pos rope "${tok[@]}" --data "$corpus" --batch 1 --ctx "$sp_ctx" --steps 3
    --eval-every 0 --eval-batches 1 --save-every 0 --json)
lines+=("$(run "sp: 1 process x 2 threads" "${sp[@]}" -t 2 -o "$work/d.gguf")")
lines+=("$(run "sp: --seq-parallel 2 x 1 thread" mpirun -np 2 "${sp[@]}" --seq-parallel 2 -t 1 -o "$work/e.gguf")")
printf '%s\n' "${lines[@]}"
python3 - "$steps" "$sp_ctx" "${lines[@]}" <<'PY'
import json, sys
steps, sp_ctx = int(sys.argv[1]), int(sys.argv[2])
rows = [json.loads(x) for x in sys.argv[3:]]
print(f"\n| run | tokens/s | step ms | peak RSS (largest process) | traffic |")
print("|---|---|---|---|---|")
for r in rows:
    tokens_per_step = (8 * 256) if r["label"].startswith("dp") else sp_ctx
    step_ms = 1e3 * tokens_per_step / r["tokens_per_s"]
    traffic = ""
    if "allreduce" in r:
        a = r["allreduce"]
        traffic = (f"{a['bytes_per_step'] / 2**20:.1f} MiB all-reduced per step in {a['buckets_per_step']:.0f} buckets; "
                   f"{1e3 * a['comm_s_per_step']:.1f} ms communicating, {1e3 * a['exposed_s_per_step']:.1f} ms not hidden "
                   f"(overlap {100 * a['overlap']:.0f}%)")
    if "ring" in r:
        g = r["ring"]
        traffic = (f"ring: {g['bytes_sent'] / 2**20 / r['steps_run']:.1f} MiB sent per step (and its final evaluation); "
                   f"{g['wait_s']:.2f} s waiting on transfers, {g['attention_s']:.2f} s in attention")
        if "allreduce" in r:
            a = r["allreduce"]
            traffic += f"; gradients {a['bytes_per_step'] / 2**20:.1f} MiB per step"
    print(f"| {r['label']} | {r['tokens_per_s']:.0f} | {step_ms:.0f} | {r['peak_rss_mib']:.0f} MiB | {traffic} |")
PY
