#!/usr/bin/env python3
"""transformers' sentence embeddings, the reference for tests/hf/compare_bert.py.

  PYTHONPATH=.pydeps/hf /usr/bin/python3 tests/hf/bert_reference.py MODEL_DIR TEXTS.json OUT.npy [IDS.json]

Runs under Debian's python3 (python3-torch) with `transformers` from scripts/setup_hf.sh.
BertModel over the texts, in float32, batched with padding and the attention mask, then
sentence-transformers' Pooling (mean over the real tokens, read from 1_Pooling/config.json) and
Normalize (L2), written here from their definitions. Texts are cut to 512 tokens as longctx cuts
them (the model's position table). IDS.json, when given, receives each text's token ids.
"""
import json
import sys

import numpy as np
import torch
from transformers import AutoTokenizer, BertModel

model_dir, texts_path, out_path = sys.argv[1:4]
texts = json.load(open(texts_path, encoding="utf-8"))
torch.manual_seed(0)
torch.set_num_threads(2)
tok = AutoTokenizer.from_pretrained(model_dir)
model = BertModel.from_pretrained(model_dir, torch_dtype=torch.float32, add_pooling_layer=False).eval()
out, ids = [], []
with torch.no_grad():
    for i in range(0, len(texts), 32):
        enc = tok(texts[i:i + 32], padding=True, truncation=True, max_length=512, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(mean, p=2, dim=1).numpy())
        ids += [row[:int(m.sum())].tolist() for row, m in zip(enc["input_ids"], enc["attention_mask"])]
np.save(out_path, np.concatenate(out).astype(np.float32))
if len(sys.argv) > 4:
    json.dump(ids, open(sys.argv[4], "w"))
