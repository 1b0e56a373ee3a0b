#!/bin/sh
# tokenize-decode-model.sh -- prumux-tokenize -d -m decodes with the
# model's vocabulary and frees the model: under --enable-sanitizers
# (CI) LeakSanitizer's report of a leak, which stderr now lets out at
# exit, fails this test.
. "$abs_top_srcdir/tests/init.sh"

"$abs_top_builddir/tests/test-model" --write-tiny tiny.pmx \
  || framework_failure_ "test-model --write-tiny"
echo 'a b' | prumux-tokenize -m tiny.pmx > tok.pmxs || fail_ "tokenize -m"
prumux-tokenize -d -m tiny.pmx tok.pmxs > out 2> err || { cat err >&2; fail_ "tokenize -d -m"; }
echo '[CLS] a b [SEP]' | compare - out || fail_ "decoded text"
grep -q 'LeakSanitizer' err && { cat err >&2; fail_ "leak"; }
[ -s err ] && { cat err >&2; fail_ "unexpected messages"; }
exit 0
