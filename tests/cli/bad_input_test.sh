#!/usr/bin/env bash
# Bad input to the CLI: each case must exit non-zero with one "longctx: error:" line on stderr,
# never crash (no signal exit), and leave no output file behind.
# Usage: bad_input_test.sh path/to/longctx
set -u
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0; passes=0
# expect_error NAME OUTPUT_FILE_THAT_MUST_NOT_EXIST -- command...
expect_error() {
  local name=$1 nofile=$2; shift 3
  "$@" > "$work/out" 2> "$work/err" < /dev/null
  local rc=$?
  local lines; lines=$(grep -c '^longctx: error:' "$work/err")
  if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ] || [ "$lines" -ne 1 ] || { [ -n "$nofile" ] && [ -e "$nofile" ]; }; then
    echo "FAIL $name: rc=$rc, error lines=$lines"; sed 's/^/  stderr: /' "$work/err" | head -5; fails=$((fails+1))
  else
    echo "ok   $name: $(grep '^longctx: error:' "$work/err")"; passes=$((passes+1))
  fi
}
for i in $(seq 1 600); do echo "And God said, Let there be light: and there was light. Verse $i of the test corpus."; done > "$work/corpus.txt"
: > "$work/empty.txt"
expect_error missing-corpus "$work/o.gguf" -- "$bin" train --data "$work/nope.txt" --steps 1 -o "$work/o.gguf"
expect_error empty-corpus "$work/o.gguf" -- "$bin" train --data "$work/empty.txt" --steps 1 -o "$work/o.gguf"
expect_error directory-corpus "$work/o.gguf" -- "$bin" train --data "$work" --steps 1 -o "$work/o.gguf"
expect_error ctx-zero "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --ctx 0 -o "$work/o.gguf"
expect_error negative-lr "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --lr -1 -o "$work/o.gguf"
expect_error bad-precision "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --precision fp8 -o "$work/o.gguf"
expect_error colt5-unknown-part "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --colt5 "mlp=light:4" -o "$work/o.gguf"
expect_error colt5-bad-route "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --colt5 "ffn=route:3/2" -o "$work/o.gguf"
expect_error colt5-unknown-key "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --colt5 "ffn=heavy:64,size:3" -o "$work/o.gguf"
expect_error bucket-zero "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --bucket-mib 0 -o "$work/o.gguf"
# Without a launcher the job has one rank: --seq-parallel 2 names the mpirun it needs.
expect_error seq-parallel-alone "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --seq-parallel 2 -o "$work/o.gguf"
# bf16 on a CPU without AMX-BF16 (LONGCTX_NO_AMX turns the tiles off): refused, not silently fp32.
expect_error bf16-without-amx "$work/o.gguf" -- env LONGCTX_NO_AMX=1 "$bin" train --data "$work/corpus.txt" --steps 1 \
  --precision bf16 -o "$work/o.gguf"
expect_error bench-gemm-bad-shape "" -- "$bin" bench gemm --shapes 12x0x3
expect_error bench-memory-zero-mib "" -- "$bin" bench memory --mib 0
expect_error bench-memory-zero-reps "" -- "$bin" bench memory --mib 1 -r 0
expect_error kv-heads "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --kv-heads 3 -o "$work/o.gguf"
expect_error unknown-pos "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --pos spiral -o "$work/o.gguf"
expect_error attn-window-zero "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --attn window:0 -o "$work/o.gguf"
expect_error attn-unknown "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --attn sparse -o "$work/o.gguf"
expect_error attn-list-bad-item "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --attn window:64,bigbird:4,2 -o "$work/o.gguf"
expect_error attn-bidirectional "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --vocab-size 300 --attn full -o "$work/o.gguf"
expect_error rope-scaling-below-one "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --rope-scaling linear:0.5 -o "$work/o.gguf"
expect_error rope-scaling-unknown "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --rope-scaling spiral:2 -o "$work/o.gguf"
expect_error rope-scaling-yarn-orig "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --vocab-size 300 --rope-scaling yarn:2,100000 -o "$work/o.gguf"
expect_error rope-scaling-not-rope "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --vocab-size 300 --pos alibi --rope-scaling linear:2 -o "$work/o.gguf"
expect_error corpus-too-short "$work/o.gguf" -- "$bin" train --data "$work/corpus.txt" --vocab-size 300 --steps 1 -o "$work/o.gguf"
# A real checkpoint to damage (the held-out part needs 20 blocks of 16 KiB: a larger corpus).
for i in $(seq 1 5000); do echo "In the beginning was the Word, and the Word was with God. Line $i."; done > "$work/big.txt"
"$bin" train --preset tiny --layers 1 --vocab-size 300 --data "$work/big.txt" --ctx 8 --batch 2 --steps 1 \
  --eval-every 0 -o "$work/good.gguf" > /dev/null 2>&1 || { echo "FAIL could not make a checkpoint"; fails=$((fails+1)); }
size=$(stat -c %s "$work/good.gguf" 2>/dev/null || echo 0)
head -c $((size / 2)) "$work/good.gguf" > "$work/truncated.gguf"
head -c 100 "$work/good.gguf" > "$work/truncated_header.gguf"
{ printf 'GGUX'; tail -c +5 "$work/good.gguf"; } > "$work/badmagic.gguf"
: > "$work/empty.gguf"
for f in truncated truncated_header badmagic empty nope; do
  expect_error "generate-$f" "" -- "$bin" generate -m "$work/$f.gguf" -p hi -n 1
  expect_error "resume-$f" "" -- "$bin" train --data "$work/big.txt" --resume "$work/$f.gguf" --steps 2 -o "$work/r.gguf"
done
expect_error resume-with-attn "" -- "$bin" train --data "$work/big.txt" --resume "$work/good.gguf" --attn window:4 --steps 2 -o "$work/r.gguf"
expect_error resume-with-rope-scaling "" -- "$bin" train --data "$work/big.txt" --resume "$work/good.gguf" --rope-scaling linear:2 --steps 2 -o "$work/r.gguf"
expect_error resume-with-other-preset "" -- "$bin" train --data "$work/big.txt" --resume "$work/good.gguf" --preset small --steps 2 -o "$work/r.gguf"
expect_error resume-with-colt5 "" -- "$bin" train --data "$work/big.txt" --resume "$work/good.gguf" --colt5 "ffn=route:1/4" --steps 2 -o "$work/r.gguf"
expect_error resume-with-other-kv-heads "" -- "$bin" train --data "$work/big.txt" --resume "$work/good.gguf" --kv-heads 2 --steps 2 -o "$work/r.gguf"
expect_error resume-with-other-layers "" -- "$bin" train --data "$work/big.txt" --resume "$work/good.gguf" --preset tiny --layers 2 --steps 2 -o "$work/r.gguf"
# The command that made the checkpoint, run again with --resume added, goes on: its flags agree.
cp "$work/good.gguf" "$work/again.gguf"; cp "$work/good.state.gguf" "$work/again.state.gguf"
if "$bin" train --preset tiny --layers 1 --vocab-size 300 --data "$work/big.txt" --ctx 8 --batch 2 --steps 2 \
     --eval-every 0 -o "$work/again.gguf" --resume "$work/again.gguf" > "$work/out" 2> "$work/err"; then
  echo "ok   resume-same-command: $(tail -1 "$work/out")"; passes=$((passes+1))
else
  echo "FAIL resume-same-command"; sed 's/^/  stderr: /' "$work/err" | head -5; fails=$((fails+1))
fi
expect_error init-with-resume "" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --resume "$work/good.gguf" -o "$work/r.gguf"
expect_error init-with-pos "$work/r.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --pos alibi -o "$work/r.gguf"
expect_error init-missing "$work/r.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/nope.gguf" -o "$work/r.gguf"
expect_error eval-bad-lengths "" -- "$bin" eval -m "$work/good.gguf" --data "$work/big.txt" --lengths 8,x
expect_error eval-stride-too-long "" -- "$bin" eval -m "$work/good.gguf" --data "$work/big.txt" --lengths 8 --stride 9
expect_error eval-no-held-out "" -- "$bin" eval -m "$work/good.gguf" --data "$work/corpus.txt" --lengths 8
expect_error eval-truncated "" -- "$bin" eval -m "$work/truncated.gguf" --data "$work/big.txt" --lengths 8
expect_error bench-attention-bad-len "" -- "$bin" bench attention --seq-len 0
expect_error bench-attention-bad-impl "" -- "$bin" bench attention --seq-len 64 --impl dense
expect_error bench-attention-bad-tiles "" -- "$bin" bench attention --seq-len 64 --tiles 16
expect_error bench-attention-bad-precision "" -- "$bin" bench attention --seq-len 64 --precision fp16
expect_error info-missing "" -- "$bin" info "$work/nope.gguf"
expect_error info-truncated "" -- "$bin" info "$work/truncated_header.gguf"
expect_error perplexity-missing-text "" -- "$bin" perplexity -m "$work/good.gguf" -f "$work/nope.txt"
expect_error perplexity-text-too-short "" -- "$bin" perplexity -m "$work/good.gguf" -f "$work/empty.txt"
expect_error perplexity-bad-model "" -- "$bin" perplexity -m "$work/badmagic.gguf" -f "$work/corpus.txt"
expect_error chat-unknown-template "" -- "$bin" chat -m "$work/good.gguf" --chat-template alpaca
expect_error chat-no-template "" -- "$bin" chat -m "$work/good.gguf"
expect_error export-unknown-arch "$work/x.gguf" -- "$bin" export "$work/good.gguf" "$work/x.gguf" --arch gpt5
expect_error export-missing "$work/x.gguf" -- "$bin" export "$work/nope.gguf" "$work/x.gguf"
expect_error export-truncated "$work/x.gguf" -- "$bin" export "$work/truncated.gguf" "$work/x.gguf"
"$bin" train --preset tiny --layers 1 --vocab-size 300 --pos alibi --data "$work/big.txt" --ctx 8 --batch 2 --steps 1 \
  --eval-every 0 -o "$work/alibi.gguf" > /dev/null 2>&1 || { echo "FAIL could not make an alibi checkpoint"; fails=$((fails+1)); }
expect_error export-not-llama "$work/x.gguf" -- "$bin" export "$work/alibi.gguf" "$work/x.gguf"
expect_error logits-bad-token "$work/l.npy" -- "$bin" logits -m "$work/good.gguf" --tokens 1,x -o "$work/l.npy"
expect_error logits-token-range "$work/l.npy" -- "$bin" logits -m "$work/good.gguf" --tokens 1,999999 -o "$work/l.npy"
expect_error logits-prompt-and-tokens "$work/l.npy" -- "$bin" logits -m "$work/good.gguf" -p hi --tokens 1 -o "$work/l.npy"
expect_error tokenize-missing-model "" -- "$bin" tokenize -m "$work/nope.gguf" -p hi
expect_error tokenize-truncated-model "" -- "$bin" tokenize -m "$work/truncated_header.gguf" -p hi
expect_error tokenize-dir-without-tokenizer "" -- "$bin" tokenize -m "$work" -p hi
# A WordPiece tokenizer.json whose normalizer is not BERT's.
wpm_fixture=$(dirname "$0")/../tokenizer/golden/hf_json/wordpiece_uncased/tokenizer.json
mkdir -p "$work/wpm_nfc"
sed 's/"normalizer":{"type":"BertNormalizer"[^}]*}/"normalizer":{"type":"NFC"}/' "$wpm_fixture" > "$work/wpm_nfc/tokenizer.json"
expect_error tokenize-wordpiece-nfc "" -- "$bin" tokenize -m "$work/wpm_nfc" -p hi
expect_error tokenize-missing-file "" -- "$bin" tokenize -m "$work/good.gguf" -f "$work/nope.txt"
expect_error tokenize-file-is-dir "" -- "$bin" tokenize -m "$work/good.gguf" -f "$work"
expect_error tokenize-prompt-and-file "" -- "$bin" tokenize -m "$work/good.gguf" -p hi -f "$work/corpus.txt"
expect_error tokenize-no-text "" -- "$bin" tokenize -m "$work/good.gguf"
expect_error detokenize-missing-model "" -- "$bin" detokenize -m "$work/nope.gguf" --ids 1
expect_error detokenize-bad-id "" -- "$bin" detokenize -m "$work/good.gguf" --ids 1,x
expect_error detokenize-empty-item "" -- "$bin" detokenize -m "$work/good.gguf" --ids 1,,2
expect_error detokenize-negative-id "" -- "$bin" detokenize -m "$work/good.gguf" --ids=-1
expect_error detokenize-id-range "" -- "$bin" detokenize -m "$work/good.gguf" --ids 1,300
expect_error detokenize-id-huge "" -- "$bin" detokenize -m "$work/good.gguf" --ids 99999999999999999999
expect_error logits-too-long "$work/l.npy" -- "$bin" logits -m "$work/good.gguf" --tokens 1,1,1,1,1,1,1,1,1 -o "$work/l.npy"
expect_error bench-model-missing "" -- "$bin" bench -m "$work/nope.gguf"
expect_error bench-model-too-long "" -- "$bin" bench -m "$work/good.gguf" -p 100000
expect_error bench-nothing "" -- "$bin" bench
expect_error bad-temp "" -- "$bin" generate -m "$work/good.gguf" -p hi --temp -1
expect_error bad-top-p "" -- "$bin" generate -m "$work/good.gguf" -p hi --top-p 0
expect_error prompt-too-long "" -- "$bin" generate -m "$work/good.gguf" -p "$(head -c 4000 "$work/corpus.txt")" -n 1
expect_error tokenizer-missing-data "$work/t.gguf" -- "$bin" tokenizer train --data "$work/nope.txt" -o "$work/t.gguf"
expect_error tokenizer-bad-vocab "$work/t.gguf" -- "$bin" tokenizer train --data "$work/corpus.txt" --vocab-size 10 -o "$work/t.gguf"
# Inconsistent shapes and unknown required keys need a crafted GGUF: done in C++ (tests/model).
for f in truncated truncated_header badmagic empty nope; do
  expect_error "quantize-$f" "$work/q.gguf" -- "$bin" quantize "$work/$f.gguf" "$work/q.gguf" q8_0
done
expect_error quantize-unknown-type "$work/q.gguf" -- "$bin" quantize "$work/good.gguf" "$work/q.gguf" q3_x
expect_error quantize-k-type "$work/q.gguf" -- "$bin" quantize "$work/good.gguf" "$work/q.gguf" q4_k
expect_error quantize-missing-type "$work/q.gguf" -- "$bin" quantize "$work/good.gguf" "$work/q.gguf"
expect_error quantize-no-out-dir "$work/nodir/q.gguf" -- "$bin" quantize "$work/good.gguf" "$work/nodir/q.gguf" q8_0
expect_error quantize-out-is-dir "" -- "$bin" quantize "$work/good.gguf" "$work" q8_0
expect_error bench-random-bad-key "" -- "$bin" bench --random-model llama:depth=3 -p 8 -n 0 -r 1
expect_error bench-random-bad-arch "" -- "$bin" bench --random-model gpt9:layers=1 -p 8 -n 0 -r 1
expect_error bench-random-bad-heads "" -- "$bin" bench --random-model llama:layers=1,heads=5 -p 8 -n 0 -r 1
expect_error bench-model-and-random "" -- "$bin" bench -m "$work/good.gguf" --random-model llama:layers=1 -p 8 -n 0 -r 1
expect_error bench-bad-depth "" -- "$bin" bench -m "$work/good.gguf" --depth 4,x -p 4 -n 0 -r 1
expect_error bench-depth-past-ctx "" -- "$bin" bench -m "$work/good.gguf" --depth 64 -p 4 -n 0 -r 1
# A cache past any machine's memory (135 KiB of f32 K/V per token x 4M tokens): the
# memory plan's error, before the pool is allocated.
expect_error bench-cache-past-memory "" -- "$bin" bench --random-model llama:layers=30,model_dim=576,heads=9,kv_heads=9,ff_dim=64,vocab=300,type=q8_0 \
  -d 4194000 -p 0 -n 1 -r 1 --cache-type-k f32 --cache-type-v f32
expect_error generate-ubatch-zero "" -- "$bin" generate -m "$work/good.gguf" -p hi -n 1 --ubatch 0
expect_error chat-ubatch-zero "" -- "$bin" chat -m "$work/good.gguf" --ubatch 0
expect_error generate-cache-type "" -- "$bin" generate -m "$work/good.gguf" -p hi -n 1 --cache-type-k q4_0
expect_error bench-cache-type "" -- "$bin" bench -m "$work/good.gguf" -p 4 -n 0 -r 1 --cache-type-v int8
expect_error bench-ubatch-zero "" -- "$bin" bench -m "$work/good.gguf" --ubatch 0 -p 4 -n 0 -r 1
expect_error generate-keep-negative "" -- "$bin" generate -m "$work/good.gguf" -p hi -n 1 --context-shift --keep -1
expect_error generate-context-full "" -- "$bin" generate -m "$work/good.gguf" -p hi -n 100 --ctx 8
expect_error generate-keep-whole-context "" -- "$bin" generate -m "$work/good.gguf" -p hi -n 100 --ctx 8 --context-shift --keep 8
expect_error generate-prompt-file-missing "" -- "$bin" generate -m "$work/good.gguf" --prompt-file "$work/nope.txt" -n 1
expect_error generate-prompt-file-empty "" -- "$bin" generate -m "$work/good.gguf" --prompt-file "$work/empty.txt" -n 1
long=$(head -c 2000 "$work/corpus.txt" | tr '\n' ' ')
expect_error generate-shared-prefix-too-long "" -- "$bin" generate -m "$work/good.gguf" --ctx 16 -n 1 -p "$long one" -p "$long two"
expect_error perplexity-ubatch-zero "" -- "$bin" perplexity -m "$work/good.gguf" -f "$work/corpus.txt" --ubatch 0
expect_error perplexity-cache-type "" -- "$bin" perplexity -m "$work/good.gguf" -f "$work/corpus.txt" --cache-type-k q4_1
# Block expansion and frozen subsets (good.gguf has 1 layer).
expect_error expand-every-not-dividing "$work/x.gguf" -- "$bin" expand -m "$work/good.gguf" -o "$work/x.gguf" --every 2
expect_error expand-add-zero "$work/x.gguf" -- "$bin" expand -m "$work/good.gguf" -o "$work/x.gguf" --add 0
expect_error expand-add-and-every "$work/x.gguf" -- "$bin" expand -m "$work/good.gguf" -o "$work/x.gguf" --add 1 --every 1
expect_error expand-neither "$work/x.gguf" -- "$bin" expand -m "$work/good.gguf" -o "$work/x.gguf"
expect_error expand-output-is-input "" -- "$bin" expand -m "$work/good.gguf" -o "$work/good.gguf" --every 1
expect_error expand-truncated "$work/x.gguf" -- "$bin" expand -m "$work/truncated.gguf" -o "$work/x.gguf" --every 1
expect_error expand-bad-type "$work/x.gguf" -- "$bin" expand -m "$work/good.gguf" -o "$work/x.gguf" --every 1 --type q3_k
expect_error train-only-missing-block "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --train-only blocks=0,4 --steps 1 -o "$work/t.gguf"
expect_error train-only-new-unexpanded "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --train-only new --steps 1 -o "$work/t.gguf"
expect_error train-only-unknown "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --train-only attention --steps 1 -o "$work/t.gguf"
expect_error freeze-everything "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --freeze all --steps 1 -o "$work/t.gguf"
# LoRA: an adapter trained for a 2-layer expansion of good.gguf does not fit good.gguf.
"$bin" expand -m "$work/good.gguf" -o "$work/two.gguf" --every 1 > /dev/null 2>&1
"$bin" train --data "$work/big.txt" --init "$work/two.gguf" --lora r=2,targets=q,v --steps 1 --ctx 8 --batch 1 \
  --eval-every 0 --eval-batches 1 -o "$work/two-lora.gguf" > /dev/null 2>&1 || { echo "FAIL could not train an adapter"; fails=$((fails+1)); }
expect_error lora-without-init "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --lora r=4,targets=q --steps 1 -o "$work/t.gguf"
expect_error lora-with-train-only "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --lora r=4,targets=q --train-only new --steps 1 -o "$work/t.gguf"
expect_error lora-rank-zero "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --lora r=0,targets=q --steps 1 -o "$work/t.gguf"
expect_error lora-unknown-target "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --init "$work/good.gguf" --lora r=4,targets=qkv --steps 1 -o "$work/t.gguf"
expect_error lora-missing-file "" -- "$bin" generate -m "$work/good.gguf" -p hi -n 1 --lora "$work/nope.gguf"
expect_error lora-not-an-adapter "" -- "$bin" generate -m "$work/good.gguf" -p hi -n 1 --lora "$work/good.gguf"
expect_error lora-another-base "" -- "$bin" generate -m "$work/good.gguf" -p hi -n 1 --lora "$work/two-lora.gguf"
expect_error lora-scale-count "" -- "$bin" generate -m "$work/two.gguf" -p hi -n 1 --lora "$work/two-lora.gguf" --lora-scale 1 --lora-scale 2
expect_error merge-lora-without-lora "$work/m.gguf" -- "$bin" merge-lora -m "$work/two.gguf" -o "$work/m.gguf"
expect_error merge-lora-another-base "$work/m.gguf" -- "$bin" merge-lora -m "$work/good.gguf" --lora "$work/two-lora.gguf" -o "$work/m.gguf"
expect_error merge-lora-output-is-input "" -- "$bin" merge-lora -m "$work/two.gguf" --lora "$work/two-lora.gguf" -o "$work/two.gguf"
# Classification.
printf '{"text": "fine"}\nnot json\n' > "$work/bad.jsonl"
printf '{"text": "fine", "label": "maybe"}\n' > "$work/badlabel.jsonl"
expect_error classify-one-label "" -- "$bin" classify -m "$work/good.gguf" --labels yes -p "a text"
expect_error classify-empty-label "" -- "$bin" classify -m "$work/good.gguf" --labels yes,,no -p "a text"
expect_error classify-repeated-label "" -- "$bin" classify -m "$work/good.gguf" --labels yes,no,yes -p "a text"
expect_error classify-no-text "" -- "$bin" classify -m "$work/good.gguf" --labels yes,no
expect_error classify-blank-text "" -- "$bin" classify -m "$work/good.gguf" --labels yes,no -p "  "
expect_error classify-template-without-text "" -- "$bin" classify -m "$work/good.gguf" --labels yes,no -p hi --template "Label:"
expect_error classify-bad-jsonl "" -- "$bin" classify -m "$work/good.gguf" --labels yes,no -f "$work/bad.jsonl"
expect_error classify-unknown-gold "" -- "$bin" classify -m "$work/good.gguf" --labels yes,no -f "$work/badlabel.jsonl"
expect_error sentiment-missing-file "" -- "$bin" sentiment -m "$work/good.gguf" -f "$work/nope.jsonl"
expect_error translate-without-to "" -- "$bin" translate -m "$work/good.gguf" -p "a text"
expect_error rewrite-without-style "" -- "$bin" rewrite -m "$work/good.gguf" -p "a text"
expect_error summarize-empty-text "" -- "$bin" summarize -m "$work/good.gguf" -p " "
expect_error summarize-text-and-file "" -- "$bin" summarize -m "$work/good.gguf" -p hi -f "$work/corpus.txt"
expect_error summarize-no-template "" -- "$bin" summarize -m "$work/good.gguf" -p "a text"
# Encoders and embeddings (all-MiniLM-L6-v2 from scripts/fetch_model.sh, when present).
expect_error embed-decoder "" -- "$bin" embed -m "$work/good.gguf" -p "a text"
expect_error export-bert-from-decoder "$work/x.gguf" -- "$bin" export "$work/good.gguf" "$work/x.gguf" --arch bert
minilm=$(dirname "$0")/../../models/all-MiniLM-L6-v2
if [ -d "$minilm" ]; then
  printf 'first text\n\nthird text\n' > "$work/blank_line.txt"
  expect_error encoder-to-generate "" -- "$bin" generate -m "$minilm" -p hi -n 1
  expect_error encoder-to-perplexity "" -- "$bin" perplexity -m "$minilm" -f "$work/corpus.txt"
  expect_error encoder-to-train "$work/t.gguf" -- "$bin" train --data "$work/big.txt" --init "$minilm" --steps 1 -o "$work/t.gguf"
  expect_error embed-blank-text "" -- "$bin" embed -m "$minilm" -p "   "
  expect_error embed-blank-line "" -- "$bin" embed -m "$minilm" -f "$work/blank_line.txt"
  expect_error embed-empty-file "" -- "$bin" embed -m "$minilm" -f "$work/empty.txt"
  expect_error embed-text-and-file "" -- "$bin" embed -m "$minilm" -p hi -f "$work/blank_line.txt"
  expect_error embed-unknown-pooling "" -- "$bin" embed -m "$minilm" -p hi --pooling max
  expect_error export-bert-as-llama "$work/x.gguf" -- "$bin" export "$minilm" "$work/x.gguf" --arch llama
  # Retrieval indexes.
  mkdir -p "$work/docs"
  echo "The capital of Freedonia is Tuxford." > "$work/docs/geo.md"
  "$bin" index build --embed-model "$minilm" -o "$work/ix.gguf" "$work/docs" > /dev/null 2>&1 || { echo "FAIL could not build an index"; fails=$((fails+1)); }
  "$bin" export "$minilm" "$work/minilm.gguf" --arch bert > /dev/null 2>&1
  "$bin" quantize "$work/minilm.gguf" "$work/minilm-q8.gguf" q8_0 > /dev/null 2>&1
  cp "$work/ix.gguf" "$work/ix-before.gguf"
  expect_error index-another-model "" -- "$bin" index search "$work/ix.gguf" "capital" --embed-model "$work/minilm-q8.gguf"
  expect_error index-build-another-model "" -- "$bin" index build --embed-model "$work/minilm-q8.gguf" -o "$work/ix.gguf" "$work/docs"
  cmp -s "$work/ix.gguf" "$work/ix-before.gguf" || { echo "FAIL index-build-another-model changed the index"; fails=$((fails+1)); }
  head -c 300 "$work/ix.gguf" > "$work/ix-cut.gguf"
  expect_error index-truncated "" -- "$bin" index search "$work/ix-cut.gguf" "capital"
  expect_error index-not-an-index "" -- "$bin" index search "$work/good.gguf" "capital"
  expect_error index-build-over-a-model "" -- "$bin" index build --embed-model "$minilm" -o "$work/good.gguf" "$work/docs"
  expect_error index-empty-query "" -- "$bin" index search "$work/ix.gguf" "  "
  expect_error index-empty-document "$work/ix2.gguf" -- "$bin" index build --embed-model "$minilm" -o "$work/ix2.gguf" "$work/empty.txt"
  expect_error index-missing-path "$work/ix2.gguf" -- "$bin" index build --embed-model "$minilm" -o "$work/ix2.gguf" "$work/nope"
  expect_error index-decoder-model "$work/ix2.gguf" -- "$bin" index build --embed-model "$work/good.gguf" -o "$work/ix2.gguf" "$work/docs"
  expect_error index-overlap-too-big "$work/ix2.gguf" -- "$bin" index build --embed-model "$minilm" -o "$work/ix2.gguf" "$work/docs" --chunk-tokens 16 --overlap 16
  # The approximate index (FAISS HNSW, `--ann`): asked of an index without one, and damaged.
  expect_error index-approx-without-ann "" -- "$bin" index search "$work/ix.gguf" "capital" --approx
  expect_error index-ef-search-without-approx "" -- "$bin" index search "$work/ix.gguf" "capital" --ef-search 32
  if "$bin" index build --embed-model "$minilm" -o "$work/ix-ann.gguf" "$work/docs" --ann > /dev/null 2> "$work/err"; then
    "$bin" index search "$work/ix-ann.gguf" "capital" --approx > /dev/null 2>&1 || { echo "FAIL index search --approx on a good index"; fails=$((fails+1)); }
    # ann.hnsw is the file's last tensor: flip a byte 60 bytes before the end (inside its bytes).
    python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-60]^=0x41; open(p,"wb").write(b)' "$work/ix-ann.gguf"
    expect_error index-ann-damaged "" -- "$bin" index search "$work/ix-ann.gguf" "capital" --approx
  elif grep -q "without FAISS" "$work/err"; then
    echo "(skipped the --ann cases: built without FAISS)"
  else
    echo "FAIL could not build an index with --ann"; sed 's/^/  stderr: /' "$work/err" | head -3; fails=$((fails+1))
  fi
else
  echo "(skipped the encoder cases: $minilm is missing)"
fi
ls "$work"/*.tmp* 2>/dev/null && { echo "FAIL temp files left behind"; fails=$((fails+1)); }
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
