#!/bin/sh
# tokenize-unicode.sh -- every code point U+0000..U+10FFFF gives exactly
# the ids of Hugging Face tokenizers, inside a word ("ab" C "cd") and alone,
# with each of the four settings of lower-casing and accent stripping, over
# a vocabulary that holds every character as a token and as a "##" piece
# (so a character's normalised form is seen, not just [UNK]).  Surrogates
# (U+D800..U+DFFF) cannot be written in UTF-8: their three-byte encodings
# are invalid input, dropped by prumux as by a Python user decoding with
# errors='replace' (U+FFFD is removed by cleaning); a line of them is
# checked too.  And lib/wordpiece-tables.h is what
# tests/gen-wordpiece-tables.py writes for the installed tokenizers, when
# that is the version the tables were generated from.  No tolerance.
. "$abs_top_srcdir/tests/init.sh"

py=python3
"$py" -c 'import tokenizers' 2>/dev/null \
  || skip_ "Python package tokenizers missing (python3 -m pip install tokenizers)"

# The vocabulary, the input (8 code points a line) and the reference ids
# for the four settings, from one Python process (the 2.2 million token
# vocabulary is read once).
"$py" - <<'PY' || framework_failure_ "cannot compute the reference ids"
import sys
from tokenizers import BertWordPieceTokenizer
from tokenizers.normalizers import BertNormalizer

cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
with open("vocab.txt", "w", encoding="utf-8") as f:
    f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    for c in cps:
        # Lines are split on LF and trimmed of trailing white space by
        # tokenizers' vocabulary reader: such characters cannot be tokens
        # (nor NUL, which prumux refuses in a vocabulary; all are dropped
        # or separators anyway).
        ch = chr(c)
        if ch.isspace() or c in (0, 0x1C, 0x1D, 0x1E, 0x1F, 0x85):
            continue
        f.write(ch + "\n##" + ch + "\n")
# LF ends lines and a CR before it is removed (as by ref-tokenize.py):
# those two are checked inside a line, on the last one.
texts = []
for i in range(0, len(cps), 8):
    texts.append(" ".join("ab%scd %s" % (chr(c), chr(c))
                          for c in cps[i:i + 8] if c not in (10, 13)))
texts.append("ab\rcd \r x")
with open("all.txt", "w", encoding="utf-8") as f:
    f.write("\n".join(texts) + "\n")
tk = BertWordPieceTokenizer("vocab.txt", clean_text=True,
                            handle_chinese_chars=True)
tk.enable_truncation(512)
for name, lower, strip in (("uncased", True, True),
                           ("uncased-keep-accents", True, False),
                           ("cased", False, False),
                           ("cased-strip", False, True)):
    tk.normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                   strip_accents=strip, lowercase=lower)
    with open(name + ".h", "w") as out:
        for enc in tk.encode_batch(texts):
            out.write(" ".join(map(str, enc.ids)) + "\n")
PY

check () {
  name=$1; shift
  prumux-tokenize --format=tsv --vocab=vocab.txt --max-length=512 "$@" all.txt \
    > "$name.c" 2> err || { cat err >&2; fail_ "$name: prumux-tokenize failed"; }
  compare "$name.h" "$name.c" || fail_ "$name: ids differ from Hugging Face"
}
check uncased
check uncased-keep-accents --no-strip-accents
check cased --cased
check cased-strip --cased --strip-accents

# Surrogates' UTF-8 (ED A0 80 .. ED BF BF) and CESU-8 pairs inside words:
# invalid bytes, dropped.
printf 'ab\355\240\200cd \355\277\277 x\355\240\275\355\270\200y\n' > sur.txt
prumux-tokenize --format=tsv --vocab=vocab.txt sur.txt > sur.c \
  || fail_ "surrogates: prumux-tokenize failed"
"$py" "$srcdir/tests/ref-tokenize.py" --vocab=vocab.txt sur.txt > sur.h \
  || framework_failure_ "surrogates: ref-tokenize.py failed"
compare sur.h sur.c || fail_ "surrogates: ids differ from Hugging Face"

# The checked-in tables are the generator's output for this tokenizers.
have=$("$py" -c 'import tokenizers; print(tokenizers.__version__)')
want=$(sed -n 's/^#define PMX_WP_TOKENIZERS_VERSION "\(.*\)"$/\1/p' \
  "$srcdir/lib/wordpiece-tables.h")
if [ "$have" = "$want" ]; then
  "$py" "$srcdir/tests/gen-wordpiece-tables.py" tables.h \
    || fail_ "gen-wordpiece-tables.py failed"
  compare "$srcdir/lib/wordpiece-tables.h" tables.h \
    || fail_ "lib/wordpiece-tables.h is not what its generator writes"
else
  echo "$testname: tables are from tokenizers $want, $have is installed: not regenerated" >&2
fi
exit 0
