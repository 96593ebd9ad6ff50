#!/usr/bin/env python3
"""make_kjv_items.py — builds examples/lm_eval/kjv_next_word.jsonl, the local lm-evaluation-harness
task of examples/lm_eval.sh: next-word items from the Book of Revelation (King James Version,
public domain, from Debian's bible-kjv package, as launch/quickstart.sh reads it).

Revelation lies in the last 5% of data/kjv.txt's tokens, which `skein prep` (val_fraction 0.05,
one document) puts in the validation split: the quick-start model never trains on it.
Each item: context = the previous verse + this verse up to its last word, continuation = " " +
that last word (trailing punctuation dropped). Every 4th verse with at least 6 words.

  apt-get install bible-kjv && python3 tools/make_kjv_items.py
"""
import json
import re
import subprocess

out = subprocess.run(["bible", "-f", "Rev1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
verses = [re.sub(r"^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ ", "", v).strip() for v in out.splitlines() if v.strip()]
items = []
for i in range(1, len(verses), 4):
    words = verses[i].split()
    last = re.sub(r"[^A-Za-z']+$", "", words[-1]) if words else ""
    if len(words) < 6 or not last:
        continue
    items.append({"context": verses[i - 1] + " " + " ".join(words[:-1]), "continuation": " " + last})
with open("examples/lm_eval/kjv_next_word.jsonl", "w") as f:
    for it in items:
        f.write(json.dumps(it) + "\n")
print(f"{len(items)} items")
