#!/usr/bin/env bash
# `mpirun -np 2 longctx train`: data-parallel training against one process.
#  1. The same global batch (5 windows: shares of 2 and 3, with --accum 2) gives the same losses
#     at every evaluation and the same weights (read back with pip's `gguf`) as one process, within
#     fp32 summation-order noise; the same 2-rank job twice gives bit-identical weights.
#  2. --resume across rank counts: 2 ranks then 1, and 1 then 2, go on exactly as 1 then 1.
#  3. SIGINT on one rank stops every rank after the same step with one checkpoint and exit 0.
#  4. A killed rank ends the job non-zero within seconds; the last checkpoint stays loadable.
#  5. --seq-parallel 2 (every window split over the ranks, ring attention; RoPE, ALiBi, learned
#     positions, windows)
#     gives one process's losses; what it cannot split is refused with one line.
# Usage: data_parallel_test.sh path/to/longctx path/to/mpirun
set -euo pipefail
bin=$1
mpirun=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
work=$(mktemp -d)
pids=()
cleanup() {
  # A job still running (a failed check): its ranks first, then mpirun (ranks outlive a killed mpirun).
  for p in "${pids[@]}"; do
    pkill -9 -P "$p" 2> /dev/null || true
    kill -9 "$p" 2> /dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
python3 - "$work/c.txt" <<'PY'
import random, sys
rng = random.Random(7)
words = ["the", "light", "and", "darkness", "water", "land", "king", "of", "israel", "said", "unto", "them",
         "behold", "a", "great", "city", "went", "forth", "in", "that", "day", "lord", "house", "people"]
with open(sys.argv[1], "w") as f:
    for i in range(16000):
        f.write(" ".join(rng.choice(words) for _ in range(rng.randint(5, 14))).capitalize() + ".\n")
PY
base=(--preset tiny --layers 2 --vocab-size 300 --data "$work/c.txt" --eval-batches 4 --json -t 1)
common=("${base[@]}" --ctx 32)
mp() { "$mpirun" -np 2 "$bin" train "$@"; }

# Every eval record and the summary of two runs agree within a relative tolerance.
same_losses() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
a, b, what = sys.argv[1], sys.argv[2], sys.argv[3]
def records(p):
    rs = [json.loads(l) for l in open(p)]
    return [r for r in rs if r["event"] == "eval"], rs[-1]
ea, sa = records(a)
eb, sb = records(b)
assert [e["step"] for e in ea] == [e["step"] for e in eb] and ea, (what, ea, eb)
worst = 0.0
for x, y in zip(ea + [sa], eb + [sb]):
    for k in ("train_loss", "val_loss"):
        d = abs(x[k] - y[k]) / abs(y[k])
        worst = max(worst, d)
        assert d <= 1e-4, (what, k, x, y)
print(f"ok: {what}: {len(ea)} evaluations agree (worst relative difference {worst:.2e})")
PY
}

# 1. One process against two ranks.
"$bin" train "${common[@]}" --batch 5 --accum 2 --steps 12 --eval-every 4 -o "$work/one.gguf" > "$work/one.jsonl"
mp "${common[@]}" --batch 5 --accum 2 --steps 12 --eval-every 4 -o "$work/two.gguf" > "$work/two.jsonl"
same_losses "$work/one.jsonl" "$work/two.jsonl" "1 process vs 2 ranks"
python3 - "$work/one.gguf" "$work/two.gguf" "$work/two.jsonl" <<'PY'
import json, sys
import numpy as np
from gguf import GGUFReader
a, b = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
ta = {t.name: np.array(t.data, dtype=np.float64) for t in a.tensors}
tb = {t.name: np.array(t.data, dtype=np.float64) for t in b.tensors}
assert ta.keys() == tb.keys() and ta, (sorted(ta), sorted(tb))
worst = max(float(np.max(np.abs(ta[k] - tb[k]))) for k in ta)
scale = max(float(np.max(np.abs(v))) for v in ta.values())
assert worst <= 1e-4 * scale, (worst, scale)
summary = [json.loads(l) for l in open(sys.argv[3])][-1]
assert summary["ranks"] == 2 and summary["step"] == 12, summary
params = sum(v.size for v in ta.values())
ar = summary["allreduce"]
# Every gradient float (the flat buffer pads each tensor to 16 floats) once per step.
assert 4 * params <= ar["bytes_per_step"] <= 4 * (params + 16 * len(ta)), (ar, params)
assert 0 <= ar["overlap"] <= 1 and ar["buckets_per_step"] >= 1, ar
print(f"ok: weights after 12 steps agree (max |diff| {worst:.2e}, weights up to {scale:.2f}); "
      f"{ar['bytes_per_step']} bytes summed per step in {ar['buckets_per_step']} buckets")
PY

# The same job again: the reductions run in a fixed order, so the weights are bit-identical.
mp "${common[@]}" --batch 5 --accum 2 --steps 12 --eval-every 4 -o "$work/two-again.gguf" > /dev/null
cmp -s "$work/two.gguf" "$work/two-again.gguf" || { echo "FAIL: two runs of the same 2-rank job differ" >&2; exit 1; }
echo "ok: the same 2-rank job twice: bit-identical checkpoints"

# 2. Resume with another rank count.
"$bin" train "${common[@]}" --batch 4 --steps 6 --eval-every 3 -o "$work/r11.gguf" > /dev/null
cp "$work/r11.gguf" "$work/r12.gguf"
cp "$work/r11.state.gguf" "$work/r12.state.gguf"
mp "${common[@]}" --batch 4 --steps 6 --eval-every 3 -o "$work/r21.gguf" > /dev/null
"$bin" train "${common[@]}" --steps 12 --eval-every 3 --resume "$work/r11.gguf" > "$work/r11.jsonl"
"$bin" train "${common[@]}" --steps 12 --eval-every 3 --resume "$work/r21.gguf" > "$work/r21.jsonl"
mp "${common[@]}" --steps 12 --eval-every 3 --resume "$work/r12.gguf" > "$work/r12.jsonl"
same_losses "$work/r11.jsonl" "$work/r21.jsonl" "2 ranks then 1 vs 1 then 1"
same_losses "$work/r11.jsonl" "$work/r12.jsonl" "1 then 2 ranks vs 1 then 1"

# The rank processes of a running mpirun (its children).
ranks_of() {
  local deadline=$((SECONDS + 60)) out
  while ((SECONDS < deadline)); do
    out=$(pgrep -P "$1" -f "longctx train" || true)
    if [ "$(echo "$out" | grep -c .)" -eq 2 ]; then echo "$out"; return 0; fi
    sleep 0.2
  done
  echo "FAIL: mpirun $1 did not start 2 ranks" >&2
  return 1
}
wait_for_eval() {
  local deadline=$((SECONDS + 120))
  until grep -q '"event":"eval"' "$1" 2> /dev/null; do
    ((SECONDS < deadline)) || { echo "FAIL: no evaluation in $1" >&2; return 1; }
    sleep 0.2
  done
}

# 3. SIGINT on one rank: all stop together, one checkpoint, exit 0.
"$mpirun" -np 2 "$bin" train "${common[@]}" --batch 4 --steps 100000 --eval-every 5 --save-every 0 -o "$work/s.gguf" > "$work/s.jsonl" 2> "$work/s.err" &
job=$!
pids+=("$job")
wait_for_eval "$work/s.jsonl"
second=$(ranks_of "$job" | tail -1)
kill -INT "$second"
rc=0
timeout 60 tail --pid="$job" -f /dev/null || { echo "FAIL: SIGINT on one rank did not end the job" >&2; exit 1; }
wait "$job" || rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL: the job stopped by SIGINT exited $rc" >&2; cat "$work/s.err" >&2; exit 1; }
python3 - "$work/s.jsonl" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1])][-1]
assert s["event"] == "summary" and s["interrupted"] and 5 <= s["step"] < 100000, s
print(f"ok: SIGINT on one rank: both stopped after step {s['step']}, checkpoint written")
PY
ls "$work" | grep '^s\.' | sort | tr '\n' ' ' | grep -qx 's.err s.gguf s.jsonl s.state.gguf ' ||
  { echo "FAIL: files after the interrupted run: $(ls "$work" | grep '^s\.')" >&2; exit 1; }
"$bin" info "$work/s.gguf" > /dev/null

# 4. A killed rank: the job ends non-zero within seconds, the last checkpoint is intact.
"$mpirun" -np 2 "$bin" train "${common[@]}" --batch 4 --steps 100000 --eval-every 5 --save-every 5 -o "$work/k.gguf" > "$work/k.jsonl" 2> "$work/k.err" &
job=$!
pids+=("$job")
wait_for_eval "$work/k.jsonl"
sleep 0.5
second=$(ranks_of "$job" | tail -1)
start=$SECONDS
kill -9 "$second"
timeout 30 tail --pid="$job" -f /dev/null || { echo "FAIL: a killed rank left the job running" >&2; exit 1; }
rc=0
wait "$job" || rc=$?
[ "$rc" -ne 0 ] || { echo "FAIL: the job with a killed rank exited 0" >&2; exit 1; }
grep -qi "killed\|signal 9" "$work/k.err" || { echo "FAIL: no message naming the killed rank:" >&2; cat "$work/k.err" >&2; exit 1; }
"$bin" info "$work/k.gguf" > /dev/null
echo "ok: a killed rank ended the job in $((SECONDS - start)) s (exit $rc); the last checkpoint loads"

# 5. Sequence parallel: each window split over the two ranks.
for arch in "--pos rope --attn causal" "--pos alibi --attn window:12,causal --kv-heads 2" "--pos learned"; do
  # shellcheck disable=SC2086
  "$bin" train "${common[@]}" $arch --batch 3 --steps 8 --eval-every 4 -o "$work/sp1.gguf" > "$work/sp1.jsonl"
  # shellcheck disable=SC2086
  mp "${common[@]}" $arch --seq-parallel 2 --batch 3 --steps 8 --eval-every 4 -o "$work/sp2.gguf" > "$work/sp2.jsonl"
  same_losses "$work/sp1.jsonl" "$work/sp2.jsonl" "1 process vs --seq-parallel 2 ($arch)"
done
expect_refused() {
  local want=$1
  shift
  local rc=0
  mp "${base[@]}" --steps 2 -o "$work/bad.gguf" "$@" > /dev/null 2> "$work/bad.err" || rc=$?
  [ "$rc" -ne 0 ] && grep -q -- "$want" "$work/bad.err" ||
    { echo "FAIL: $* (exit $rc) did not say '$want':" >&2; cat "$work/bad.err" >&2; exit 1; }
  [ ! -e "$work/bad.gguf" ] || { echo "FAIL: $* wrote a checkpoint" >&2; exit 1; }
}
expect_refused "multiple of 2 x 2 ranks" --seq-parallel 2 --ctx 30
expect_refused "must equal the job's rank count" --seq-parallel 4 --ctx 32
expect_refused "not bigbird" --seq-parallel 2 --ctx 32 --attn bigbird:8,1,1,1
echo "ok: --seq-parallel refuses what it cannot split"
