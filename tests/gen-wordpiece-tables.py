#!/usr/bin/env python3
"""gen-wordpiece-tables.py -- write lib/text/wordpiece-tables.h, the Unicode data
of prumux's BERT tokenizer, by asking Hugging Face tokenizers what it does
with every code point U+0000..U+10FFFF (surrogates excluded: they cannot
be in UTF-8, and a Python str holding one cannot reach Rust).

Hugging Face's BertNormalizer and BertPreTokenizer classify characters
with the Unicode tables compiled into tokenizers (Rust's std and the
unicode-normalization-alignments and unicode_categories crates), which are
older than those of any current Unicode library and of each other: a
character added in Unicode 11 may be a letter to one and unassigned to the
other.  Rather than a list of exceptions to a system library (utf8proc),
whose tables change when the library is upgraded, the generated file is
all of the data prumux needs, taken from tokenizers itself, so prumux
gives the same ids as the pinned tokenizers version whatever is installed:

  class     what cleaning does with the raw character: drop it (NUL,
            U+FFFD, control characters by tokenizers' categories), make
            it a separator (white space), pad it as a word of its own
            (BERT's CJK ranges), or keep it;
  pretok    what the pre-tokenizer does with a normalised character:
            split on it (white space), isolate it (punctuation), or keep
            it in the word;
  strip     accent stripping (NFD, then nonspacing marks removed): the
            characters it becomes, when not itself; Hangul syllables are
            left to the algorithm (checked here);
  lower     lower-casing: the characters it becomes, when not itself.

Lower-casing after accent stripping is checked to be the character-wise
composition of the two (it is, in tokenizers), so the four settings of
lowercase and strip_accents need only these two maps.

Usage: python3 tests/gen-wordpiece-tables.py [OUTPUT]   (default stdout)
       python3 tests/gen-wordpiece-tables.py --diff
With --diff, list instead the code points whose class (drop, space, CJK,
punctuation) in tokenizers differs from what the current Unicode data
(Python's unicodedata, as a Unicode library such as utf8proc would say)
gives: those a tokenizer built on a current library gets wrong.
Needs the Python package tokenizers; the version is recorded in the
output, and tests/tokenize-unicode.sh checks the output is what this
script writes for the installed version."""

import sys

import tokenizers
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

# Keep in step with the enums in lib/text/wordpiece.c.
CLASS_KEEP, CLASS_DROP, CLASS_SPACE, CLASS_CJK = 0, 1, 2, 3
PRE_WORD, PRE_SPACE, PRE_PUNCT = 0, 1, 2
F_STRIP, F_STRIP_EMPTY, F_LOWER = 0x10, 0x20, 0x40

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def hangul_nfd(c):
    s = c - HANGUL_FIRST
    l, v, t = 0x1100 + s // 588, 0x1161 + (s % 588) // 28, 0x11A7 + s % 28
    return [l, v] if t == 0x11A7 else [l, v, t]


def fail(msg):
    sys.stderr.write("gen-wordpiece-tables.py: %s\n" % msg)
    sys.exit(1)


def main():
    def norm(strip, lower):
        n = BertNormalizer(clean_text=True, handle_chinese_chars=True,
                           strip_accents=strip, lowercase=lower)
        return n.normalize_str
    plain, strip, lower, both = (norm(False, False), norm(True, False),
                                 norm(False, True), norm(True, True))
    pre = BertPreTokenizer().pre_tokenize_str

    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    table = bytearray(0x110000)
    strip_map, lower_map, both_seen = {}, {}, {}
    for c in cps:
        ch = chr(c)
        n = plain(ch)
        if n == "":
            cls = CLASS_DROP
        elif n == " " and c != 0x20:
            cls = CLASS_SPACE
        elif n == " %s " % ch:
            cls = CLASS_CJK
        elif n == ch:
            cls = CLASS_SPACE if c == 0x20 else CLASS_KEEP
        else:
            fail("U+%04X: unexpected cleaning %r" % (c, n))
        pieces = len(pre("a%sb" % ch))
        if pieces == 1:
            p = PRE_WORD
        elif pieces == 2 and [w for w, _ in pre("a%sb" % ch)] == ["a", "b"]:
            p = PRE_SPACE
        elif pieces == 3:
            p = PRE_PUNCT
        else:
            fail("U+%04X: unexpected pre-tokenization %r"
                 % (c, pre("a%sb" % ch)))
        flags = cls | p << 2
        if cls in (CLASS_KEEP, CLASS_CJK):
            pad = " " if cls == CLASS_CJK else ""
            s, lo, sl = strip(ch), lower(ch), both(ch)
            if not (s.startswith(pad) and s.endswith(pad)
                    and lo.startswith(pad) and lo.endswith(pad)):
                fail("U+%04X: padding lost in normalisation" % c)
            if pad:
                s, lo, sl = s[1:-1], lo[1:-1], sl[1:-1]
            s_cps, lo_cps = [ord(x) for x in s], [ord(x) for x in lo]
            if s_cps != [c]:
                if s_cps == []:
                    flags |= F_STRIP_EMPTY
                elif not (HANGUL_FIRST <= c <= HANGUL_LAST):
                    flags |= F_STRIP
                    strip_map[c] = s_cps
                elif s_cps != hangul_nfd(c):
                    fail("U+%04X: Hangul decomposition is not the"
                         " algorithm's" % c)
            if lo_cps != [c]:
                flags |= F_LOWER
                lower_map[c] = lo_cps
            both_seen[c] = sl
        table[c] = flags

    # lib/text/wordpiece.c's ASCII fast path keeps ASCII in one byte.
    for c in range(0x80):
        if (table[c] & (F_STRIP | F_STRIP_EMPTY) or table[c] & 3 == CLASS_CJK
                or not all(y < 0x80 for y in lower_map.get(c, [c]))
                or len(lower_map.get(c, [c])) != 1):
            fail("U+%04X: an ASCII character that is not kept in one byte" % c)

    # Lower-casing after stripping is the composition of the maps.
    for c, sl in both_seen.items():
        s = strip_map.get(c, [c]) if not table[c] & F_STRIP_EMPTY else []
        if HANGUL_FIRST <= c <= HANGUL_LAST:
            s = hangul_nfd(c)
        want = "".join(chr(y) for x in s for y in lower_map.get(x, [x]))
        if sl != want:
            fail("U+%04X: lowercase after strip_accents is %r, not %r"
                 % (c, sl, want))

    # Cleaning and CJK padding come before the maps, so a character a map
    # produces is seen by the pre-tokenizer only (its pretok field).
    if sys.argv[1:] == ["--diff"]:
        diff(cps, table)
    else:
        write(table, strip_map, lower_map)


def diff(cps, table):
    """Print where tokenizers' class differs from current Unicode's."""
    import unicodedata as ud
    names = {CLASS_DROP: "drop", CLASS_SPACE: "space", CLASS_CJK: "cjk"}
    cjk = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
           (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF),
           (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]

    def unicode_class(c):
        cat = ud.category(chr(c))
        if c in (9, 10, 13) or cat[0] == "Z":
            return "space"
        if c == 0 or c == 0xFFFD or cat in ("Cc", "Cf", "Co", "Cs"):
            return "drop"
        if any(a <= c <= b for a, b in cjk):
            return "cjk"
        return "punct" if cat[0] == "P" or (c < 128 and chr(c) in
                                            "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") else "word"

    def hf_class(d):
        if d & 3:
            return names[d & 3]
        return {PRE_WORD: "word", PRE_SPACE: "space",
                PRE_PUNCT: "punct"}[(d >> 2) & 3]

    n = 0
    for c in cps:
        u, h = unicode_class(c), hf_class(table[c])
        if u != h:
            print("U+%04X\t%s\t%s\t%s (Unicode %s: %s)" % (
                c, u, h, ud.name(chr(c), "?"), ud.unidata_version,
                ud.category(chr(c))))
            n += 1
    sys.stderr.write("gen-wordpiece-tables.py: %d code points differ\n" % n)


def write(table, strip_map, lower_map):
    out = open(sys.argv[1], "w", encoding="ascii") if len(sys.argv) > 1 \
        else sys.stdout
    w = out.write
    w("/* wordpiece-tables.h -- GENERATED by tests/gen-wordpiece-tables.py\n"
      "   from Hugging Face tokenizers %s; do not edit.  Regenerate with\n"
      "     python3 tests/gen-wordpiece-tables.py lib/text/wordpiece-tables.h\n"
      "   How tokenizers' BertNormalizer and BertPreTokenizer treat every\n"
      "   code point (see the generator for the meaning of each field).\n"
      "   Included by lib/text/wordpiece.c only.  */\n\n" % tokenizers.__version__)
    w("#define PMX_WP_TOKENIZERS_VERSION \"%s\"\n\n" % tokenizers.__version__)

    # Two-stage table: blocks of 256 code points, identical blocks shared.
    blocks, index = {}, []
    for hi in range(0x1100):
        b = bytes(table[hi << 8:(hi + 1) << 8])
        if b not in blocks:
            blocks[b] = len(blocks)
        index.append(blocks[b])
    w("/* Block of each 256 code points (U+0000..U+10FFFF).  */\n")
    w("static const uint8_t wp_block_index[%d] = {\n" % len(index))
    for i in range(0, len(index), 16):
        w("  " + ", ".join("%d" % x for x in index[i:i + 16]) + ",\n")
    w("};\n\n")
    if len(blocks) > 256:
        fail("too many distinct blocks for uint8_t: %d" % len(blocks))
    w("/* Class | pretok << 2 | flags of each code point of a block.  */\n")
    w("static const uint8_t wp_blocks[%d][256] = {\n" % len(blocks))
    for b in blocks:
        w("  {\n")
        for i in range(0, 256, 16):
            w("    " + ", ".join("%d" % x for x in b[i:i + 16]) + ",\n")
        w("  },\n")
    w("};\n\n")

    for name, m in (("strip", strip_map), ("lower", lower_map)):
        longest = max(len(v) for v in m.values())
        if longest > 3:
            fail("%s map: %d characters, more than 3" % (name, longest))
        w("/* %s: code point, then the 1 to 3 code points it becomes\n"
          "   (0-ended if fewer).  */\n" % name)
        w("static const uint32_t wp_%s_map[%d][4] = {\n" % (name, len(m)))
        for c in sorted(m):
            v = m[c] + [0] * (3 - len(m[c]))
            w("  { 0x%04X, %s },\n" % (c, ", ".join("0x%04X" % x for x in v)))
        w("};\n\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
