#!/usr/bin/env python3
"""ref-tokenize.py -- the reference for prumux-tokenize: Hugging Face
tokenizers' BERT WordPiece (BertNormalizer + BertPreTokenizer + WordPiece +
[CLS]/[SEP] post-processing, longest_first truncation), printing each input
row's ids as space-separated numbers, like 'prumux-tokenize --format=tsv'.

Input is read as bytes, lines split on LF, a trailing CR removed, and each
line decoded as UTF-8 with errors='replace' (what a Python user gets).

Exit 77 if the tokenizers package is missing."""

import argparse
import sys

try:
    from tokenizers import BertWordPieceTokenizer
except ImportError:
    sys.stderr.write("ref-tokenize.py: the Python package 'tokenizers' is"
                     " missing (python3 -m pip install tokenizers)\n")
    sys.exit(77)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--cased", action="store_true")
    ap.add_argument("--no-strip-accents", action="store_true")
    ap.add_argument("--strip-accents", action="store_true")
    ap.add_argument("--fields", default=None)
    ap.add_argument("--skip-header", action="store_true")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("file")
    a = ap.parse_args()

    lower = not a.cased
    strip = (lower or a.strip_accents) and not a.no_strip_accents
    tk = BertWordPieceTokenizer(a.vocab, lowercase=lower, strip_accents=strip,
                                clean_text=True, handle_chinese_chars=True)
    tk.enable_truncation(a.max_length, strategy="longest_first")

    with open(a.file, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if a.skip_header and lines:
        lines.pop(0)
    texts = []
    for raw in lines:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        s = raw.decode("utf-8", errors="replace")
        if a.fields is None:
            texts.append(s)
            continue
        cols = s.split("\t")
        idx = [int(x) - 1 for x in a.fields.split(",")]
        texts.append(tuple(cols[i] for i in idx) if len(idx) == 2
                     else cols[idx[0]])
    out = sys.stdout
    step = 4096
    for i in range(0, len(texts), step):
        for enc in tk.encode_batch(texts[i:i + step]):
            out.write(" ".join(map(str, enc.ids)) + "\n")


if __name__ == "__main__":
    main()
