#!/usr/bin/env python3
"""check_hf_tokenizer.py — checks offline that skein's byte-level BPE is a Hugging Face tokenizer.

Runs the test binary's BpeHfExport test, which trains a BPE, saves it as tokenizer.json and
encodes the strings this script wrote; then loads that tokenizer.json with Hugging Face
`tokenizers` (Tokenizer.from_file) and checks that it gives the same ids for every string and
decodes skein's ids back to the string. Not part of CI (needs `pip install tokenizers`).

  python3 tests/data/check_hf_tokenizer.py --test-binary build/release/tests/test_data \
      [--train-file kjv.txt --vocab 4096] [--hf-trained]

With --hf-trained the other direction: Hugging Face trains the byte-level BPE (BpeTrainer) and
saves it, skein loads that file (BpeTokenizer::load), and both encode the strings.

Strings: hand-picked cases and random text over many scripts (must match), and random text
over further scripts (reported separately; since the pre-split runs on PCRE2's Unicode tables
these match too). Exit status 0 when all the must-match strings match.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

HAND = [
    "Hello world", "I'm don't they're we've I'll he'd it's", "IT'S '''s 's", "abc123 456.78",
    "Hi!!! ...ok?", "a   b", "end   ", "a\n\nb", "a\r\nb\r\n", "a \n b", "x\ty\t\tz", "  hi",
    "héllo wörld", "Привет мир", "日本語のテキスト", "hi 👋🏽!", "école", "x² ½ ٣٤",
    "a\u00a0b", "a\u3000\u3000b", "a\u2028b\u0085c", "\x1c\x1d\x1e\x1f x", "\x00\x01\x7f",
    "👨‍👩‍👧 family", "Ελληνικά κείμενα", "עברית", "العربية ١٢٣", "हिन्दी पाठ", "ภาษาไทย",
    "한국어 텍스트", "ქართული", "Հայերեն", "ＦＵＬＬ　ｗｉｄｔｈ　１２３", "ǅemal ǈ", "",
    " " * 40 + "x", "a" * 500, "The quick brown fox jumps over the lazy dog. " * 20,
]

# (lo, hi) code point ranges; skein's classes are exact over COVERED.
COVERED = [(0x20, 0x7E), (0x09, 0x0D), (0x80, 0x2FF), (0x370, 0x6FF), (0x900, 0x97F),
           (0xE00, 0xE7F), (0x10A0, 0x11FF), (0x1E00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x218F),
           (0x2460, 0x24FF), (0x3000, 0x30FF), (0x3130, 0x318F), (0x4E00, 0x9FFF),
           (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF)]
UNCOVERED = [(0x0B80, 0x0BFF), (0x0980, 0x09FF), (0x1200, 0x137F), (0x0D00, 0x0D7F),
             (0x1780, 0x17FF), (0xA000, 0xA48F), (0x10400, 0x1044F)]


def random_text(rng, ranges, n):
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        c = rng.randint(lo, hi)
        if 0xD800 <= c <= 0xDFFF:
            c = 0x41
        out.append(chr(c) if rng.random() < 0.7 else rng.choice(" \n'sa1.,"))
    return "".join(out)


def hf_train(texts, vocab, path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-binary", required=True, help="path to test_data")
    ap.add_argument("--train-file", help="train on this text file (default: the test's corpus)")
    ap.add_argument("--vocab", type=int, default=None, help="vocabulary size to train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hf-trained", action="store_true",
                    help="let Hugging Face train the tokenizer and skein load it")
    args = ap.parse_args()
    try:
        from tokenizers import Tokenizer
        import tokenizers
    except ImportError:
        sys.exit("needs Hugging Face tokenizers: python3 -m pip install tokenizers")

    rng = random.Random(args.seed)
    must = list(HAND) + [random_text(rng, COVERED, rng.randint(1, 80)) for _ in range(2000)]
    info = [random_text(rng, UNCOVERED, rng.randint(1, 40)) for _ in range(200)]
    if args.train_file:
        with open(args.train_file, encoding="utf-8") as f:
            must.append(f.read())
    strings = must + info
    assert not any("<|endoftext|>" in s for s in strings)  # HF would match it as a special token

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "strings.json"), "w", encoding="utf-8") as f:
            json.dump(strings, f)
        env = dict(os.environ, SKEIN_HF_EXPORT_DIR=tmp)
        if args.train_file:
            env["SKEIN_HF_TRAIN_FILE"] = os.path.abspath(args.train_file)
        if args.vocab:
            env["SKEIN_HF_VOCAB"] = str(args.vocab)
        if args.hf_trained:
            hf_file = os.path.join(tmp, "hf_tokenizer.json")
            hf_train(strings if not args.train_file else [strings[len(must) - 1]],
                     args.vocab or 400, hf_file)
            env["SKEIN_HF_LOAD_FILE"] = hf_file
        t0 = time.time()
        run = subprocess.run([args.test_binary, "--gtest_filter=BpeHfExport.*"], env=env,
                             capture_output=True, text=True)
        if run.returncode != 0 or not os.path.exists(os.path.join(tmp, "ids.json")):
            print(run.stdout[-4000:], run.stderr[-4000:])
            sys.exit("the export test failed")
        print(f"skein: trained + encoded {len(strings)} strings in {time.time() - t0:.1f}s")
        with open(os.path.join(tmp, "ids.json"), encoding="utf-8") as f:
            ours = json.load(f)
        with open(os.path.join(tmp, "pieces.json"), encoding="utf-8") as f:
            our_pieces = json.load(f)
        hf = Tokenizer.from_file(os.path.join(tmp, "tokenizer.json"))
        if args.hf_trained:  # compare with the file as Hugging Face wrote it
            resaved = hf
            hf = Tokenizer.from_file(hf_file)
            assert all(resaved.encode(s, add_special_tokens=False).ids ==
                       hf.encode(s, add_special_tokens=False).ids for s in HAND)

    print(f"tokenizers {tokenizers.__version__}: loaded vocab {hf.get_vocab_size()}")
    bad = 0
    for s, ids, pieces in zip(must, ours, our_pieces):
        theirs = hf.encode(s, add_special_tokens=False).ids
        their_pieces = [p for p, _ in hf.pre_tokenizer.pre_tokenize_str(s)]
        decoded = hf.decode(ids, skip_special_tokens=False)
        if theirs != ids or their_pieces != pieces or decoded != s:
            bad += 1
            if bad <= 10:
                print(f"MISMATCH {s[:80]!r}\n  skein ids {ids[:30]}\n  hf    ids {theirs[:30]}\n"
                      f"  skein pieces {pieces[:30]}\n  hf    pieces {their_pieces[:30]}\n"
                      f"  HF decode of skein's ids ok: {decoded == s}")
    print(f"must-match strings: {len(must) - bad}/{len(must)} identical "
          f"(ids, pre-split pieces, and HF's decode of skein's ids)")
    n_ids = n_pieces = 0
    for s, ids, pieces in zip(info, ours[len(must):], our_pieces[len(must):]):
        n_ids += hf.encode(s, add_special_tokens=False).ids == ids
        n_pieces += [p for p, _ in hf.pre_tokenizer.pre_tokenize_str(s)] == pieces
    print(f"other scripts (informational): identical ids {n_ids}/{len(info)}, "
          f"identical pieces {n_pieces}/{len(info)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
