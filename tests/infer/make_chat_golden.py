#!/usr/bin/env python3
"""Renders SmolLM2-135M-Instruct's own chat template (tokenizer.chat_template from the GGUF) with
jinja2, the way Hugging Face's apply_chat_template does, for a set of conversations, and writes
tests/infer/golden/chat_smollm2.json for tests/infer/chat_template_test.cc.

Usage: python3 tests/infer/make_chat_golden.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
Needs pip's gguf and jinja2.
"""
import json
import os
import sys

import jinja2
from gguf import GGUFReader

HERE = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
reader = GGUFReader(path)
field = reader.fields["tokenizer.chat_template"]
template_text = bytes(field.parts[field.data[0]]).decode("utf-8")
env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
template = env.from_string(template_text)

conversations = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi! How can I help?"},
     {"role": "user", "content": "Tell me a joke.\nMake it short."}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "  spaces kept  "},
     {"role": "assistant", "content": "D'accord."}],
    [],
]
cases = []
for conv in conversations:
    for gen in (True, False):
        cases.append({"messages": conv, "add_generation_prompt": gen,
                      "rendered": template.render(messages=conv, add_generation_prompt=gen)})
out = os.path.join(HERE, "golden", "chat_smollm2.json")
with open(out, "w") as f:
    json.dump({"template": template_text, "cases": cases}, f, indent=1, ensure_ascii=False)
    f.write("\n")
print("wrote %s (%d cases)" % (out, len(cases)))
