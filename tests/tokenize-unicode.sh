#!/bin/sh
# tokenize-unicode.sh -- every code point U+0000..U+10FFFF gives exactly
# the ids of Hugging Face tokenizers, inside a word ("ab" C "cd") and alone,
# with lower-casing and accent stripping both on and both off (and, for the
# code points either changes, each without the other), over
# a vocabulary that holds every character as a token and as a "##" piece
# (so a character's normalised form is seen, not just [UNK]).  Surrogates
# (U+D800..U+DFFF) cannot be written in UTF-8: their three-byte encodings
# are invalid input, dropped by prumux as by a Python user decoding with
# errors='replace' (U+FFFD is removed by cleaning); a line of them is
# checked too.  And lib/text/wordpiece-tables.h is what
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
# those two are checked inside a line.  The last line holds surrogates'
# UTF-8 (ED A0 80, ED BF BF) and a CESU-8 pair inside words: invalid
# bytes, read as U+FFFD by Python with errors='replace'.
def lines(cps):
    return [" ".join("ab%scd %s" % (chr(c), chr(c)) for c in cps[i:i + 8])
            for i in range(0, len(cps), 8)]
texts = lines([c for c in cps if c not in (10, 13)]) + ["ab\rcd \r x"]
sur = b"ab\xed\xa0\x80cd \xed\xbf\xbf x\xed\xa0\xbd\xed\xb8\x80y"
with open("all.txt", "wb") as f:
    f.write("\n".join(texts).encode("utf-8") + b"\n" + sur + b"\n")
texts.append(sur.decode("utf-8", errors="replace"))

# With lower-casing but not accent stripping and the other way round, only
# the code points that one of the two changes (by tokenizers' own
# normaliser) can give ids that differ from both settings above.
def norm(strip, lower):
    return BertNormalizer(clean_text=True, handle_chinese_chars=True,
                          strip_accents=strip, lowercase=lower)
plain, strip, lower = (norm(False, False).normalize_str,
                       norm(True, False).normalize_str,
                       norm(False, True).normalize_str)
changed = [c for c in cps if c not in (10, 13)
           and not plain(chr(c)) == strip(chr(c)) == lower(chr(c))]
mixed = lines(changed)
with open("changed.txt", "w", encoding="utf-8") as f:
    f.write("\n".join(mixed) + "\n")

tk = BertWordPieceTokenizer("vocab.txt", clean_text=True,
                            handle_chinese_chars=True)
tk.enable_truncation(512)
for name, lower, strip, inp in (("uncased", True, True, texts),
                                ("cased", False, False, texts),
                                ("lower-only", True, False, mixed),
                                ("strip-only", False, True, mixed)):
    tk.normalizer = norm(strip, lower)
    with open(name + ".h", "w") as out:
        for enc in tk.encode_batch(inp):
            out.write(" ".join(map(str, enc.ids)) + "\n")
sys.stderr.write("tokenize-unicode: %d code points, %d changed by"
                 " lower-casing or accent stripping\n" % (len(cps), len(changed)))
PY

check () {
  name=$1 file=$2; shift 2
  prumux-tokenize --format=tsv --vocab=vocab.txt --max-length=512 "$@" "$file" \
    > "$name.c" 2> err || { cat err >&2; fail_ "$name: prumux-tokenize failed"; }
  compare "$name.h" "$name.c" || fail_ "$name: ids differ from Hugging Face"
}
check uncased all.txt
check cased all.txt --cased
check lower-only changed.txt --no-strip-accents
check strip-only changed.txt --cased --strip-accents

# The checked-in tables are the generator's output for this tokenizers.
have=$("$py" -c 'import tokenizers; print(tokenizers.__version__)')
want=$(sed -n 's/^#define PMX_WP_TOKENIZERS_VERSION "\(.*\)"$/\1/p' \
  "$srcdir/lib/text/wordpiece-tables.h")
if [ "$have" = "$want" ]; then
  "$py" "$srcdir/tests/gen-wordpiece-tables.py" tables.h \
    || fail_ "gen-wordpiece-tables.py failed"
  compare "$srcdir/lib/text/wordpiece-tables.h" tables.h \
    || fail_ "lib/text/wordpiece-tables.h is not what its generator writes"
else
  echo "$testname: tables are from tokenizers $want, $have is installed: not regenerated" >&2
fi
exit 0
