#!/bin/sh
# input-checks.sh -- small input checks that once went wrong: demux
# refuses negative row numbers other than the filler's -1 (they used to be
# dropped silently, a row lost); prumux-tokenize refuses a --max-length the
# model cannot take (it used to be refused only by prumux-mux) and decodes
# with -m (which leaked the model: seen under the sanitizers' make check);
# prumux-fit reads a table that starts with a UTF-8 byte order mark.
. "$abs_top_srcdir/tests/init.sh"

"$abs_top_builddir/tests/test-model" --write-tiny tiny.pmx \
  || framework_failure_ "test-model --write-tiny"
mux=$srcdir/share/prumux/wordnet-lexfile-n2.pmx

# Demux: row numbers below -1, on an ordinary (N = 1) and a multiplexed model.
printf 'a b\nb\na a b\nb b\n' > text
for m in tiny.pmx "$mux"; do
  prumux-tokenize -m "$m" text | prumux-mux -m "$m" | prumux-infer -m "$m" > h.pmxs \
    || fail_ "$m: pipeline"
  prumux-demux -m "$m" h.pmxs > pred || fail_ "$m: demux"
  [ "$(wc -l < pred)" = 4 ] || fail_ "$m: $(wc -l < pred) rows out, not 4"
  prumux-cat -f tsv h.pmxs > h.tsv || framework_failure_ "prumux-cat"
  awk 'done != 1 && prev ~ /^#tensor\trow\t/ { sub(/^0\t/, "-2\t"); done = 1 }
       { print; prev = $0 }' h.tsv | prumux-cat -e -o bad.pmxs \
    || framework_failure_ "prumux-cat -e"
  expect_fail 1 "tensor 'row': -2 is not a row number" prumux-demux -m "$m" bad.pmxs
done

# Tokenize: --max-length against the model.
expect_fail 1 'tiny.pmx has only 16 positions' prumux-tokenize -m tiny.pmx -n 17 text
prumux-tokenize -m tiny.pmx -n 16 text > /dev/null || fail_ "-n 16 refused"
expect_fail 1 'takes rows of at most 32 tokens' prumux-tokenize -m "$mux" -n 40 text
printf '2 4 5 3\n' | prumux-tokenize -d -m tiny.pmx > dec || fail_ "-d -m"
[ "$(cat dec)" = "[CLS] a b [SEP]" ] || fail_ "-d -m: '$(cat dec)'"

# prumux-fit: a byte order mark before the header.
t=$(printf 'task\tN\ts\taccuracy\tthroughput')
{ printf '%s\n' "$t"; printf 'a\t1\t0\t80\t100\na\t2\t0\t77\t190\n'; } > plain.tsv
{ printf '\357\273\277'; cat plain.tsv; } > bom.tsv
prumux-fit --budget 5 plain.tsv > want || fail_ "prumux-fit"
prumux-fit --budget 5 bom.tsv > got || fail_ "prumux-fit refuses a byte order mark"
compare want got || fail_ "a byte order mark changes the result"
exit 0
