#!/usr/bin/env python3
"""hf_tokenizer_oracle.py — Hugging Face `tokenizers` as the oracle for test_hf_tokenizer.cpp's
live comparison: reads {"files": {name: tokenizer.json path}, "texts": [...]} from argv[1] and
writes {name: {"ids": [...], "ids_template": [...], "decoded": [...]}} to argv[2]."""
import json
import sys

from tokenizers import Tokenizer

req = json.load(open(sys.argv[1], encoding="utf-8"))
out = {}
for name, path in req["files"].items():
    tok = Tokenizer.from_file(path)
    plain = [e.ids for e in tok.encode_batch(req["texts"], add_special_tokens=False)]
    out[name] = {"ids": plain,
                 "ids_template": [e.ids for e in tok.encode_batch(req["texts"])],
                 "decoded": [tok.decode(ids, skip_special_tokens=False) for ids in plain]}
json.dump(out, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
