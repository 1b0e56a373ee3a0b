#!/bin/sh
# shrink-cli.sh -- `prumux-model masks` and `prumux-model shrink` on a tiny
# pruned model: masks of all ones change no weight and record CoFi's
# sparsity of the shape; edited masks cut what they say; every bad input
# is an error that writes nothing.
. "$abs_top_srcdir/tests/init.sh"

"$abs_top_builddir/tests/test-model" --write-tiny tiny.pmx \
  || framework_failure_ "test-model --write-tiny"

prumux-model masks tiny.pmx > ones.tsv || fail_ "masks"
[ "$(head -1 ones.tsv)" = "$(printf 'layer\tkind\tindex\tz')" ] || fail_ "masks header"
[ "$(wc -l < ones.tsv)" -eq 26 ] || fail_ "masks: $(wc -l < ones.tsv) lines, expected 26"
prumux-model masks tiny.pmx | head -1 > /dev/null || fail_ "masks | head"

# All ones: the same tensors; sparsity 1 - 512 / 1752 (3 heads x 8 x 16 +
# 8 FFN dimensions x 8 x 2 of 3 x (4 H^2 + 4 H + 2 H I + 5 H), H 8, I 16).
prumux-model shrink -M ones.tsv -o same.pmx tiny.pmx || fail_ "shrink, all ones"
prumux-model tensors tiny.pmx > t1 && prumux-model tensors same.pmx > t2 \
  || fail_ "tensors"
compare t1 t2 || fail_ "masks of ones changed the tensor table"
prumux-model info same.pmx > info || fail_ "info"
grep -q '^sparsity: *0.707763$' info || { cat info >&2; fail_ "sparsity of all ones"; }
prumux-model info tiny.pmx | grep -q '^sparsity: *not pruned$' || fail_ "unpruned"
prumux-model verify same.pmx > /dev/null || fail_ "verify"

# Cut hidden dimensions 0 and 5, head 1 of layer 2 and FFN dimension 4 of
# layer 0; soft values stay in the weights.  Masks may come from stdin.
# Sparsity: 1 - (2 heads x 6 x 16 + 7 FFN dimensions x 6 x 2) / 1752.
awk -F '\t' -v OFS='\t' '
  $2 == "hidden" && ($3 == 0 || $3 == 5) { $4 = 0 }
  $1 == 2 && $2 == "head" && $3 == 1 { $4 = 0 }
  $1 == 0 && $2 == "intermediate" && $3 == 4 { $4 = 0 }
  $1 == 1 && $2 == "mlp" { $4 = 0.75 }
  { print }' ones.tsv > cut.tsv
prumux-model shrink -M - -o cut.pmx tiny.pmx < cut.tsv || fail_ "shrink"
prumux-model info cut.pmx > info || fail_ "info cut"
for p in '^hidden: *6$' '^layer 0 *heads 1, ffn 4, hidden 6$' \
    '^layer 1 *heads 0, ffn 3, hidden 6$' '^layer 2 *heads 1, ffn 0, hidden 6$' \
    '^sparsity: *0.842466$'; do
  grep -q "$p" info || { cat info >&2; fail_ "cut model: no '$p'"; }
done
prumux-model tensors cut.pmx | grep -q '^pooler.dense.weight	f32	8x6	48$' \
  || fail_ "the pooler keeps its output width"
prumux-model masks cut.pmx | grep -c '	hidden	' | grep -qx 6 || fail_ "masks of cut.pmx"

# Errors write nothing.
expect_fail 1 'missing --masks' prumux-model shrink -o x.pmx tiny.pmx
expect_fail 1 'missing --output' prumux-model shrink -M ones.tsv tiny.pmx
expect_fail 1 'standard output' prumux-model shrink -M ones.tsv -o - tiny.pmx
expect_fail 1 "go with 'shrink'" prumux-model -M ones.tsv info tiny.pmx
expect_fail 1 'compress' prumux-model shrink -z lz4 -M ones.tsv -o x.pmx tiny.pmx
expect_fail 1 'nope.tsv' prumux-model shrink -M nope.tsv -o x.pmx tiny.pmx
grep -v '	hidden	7	' ones.tsv > short.tsv
expect_fail 1 'hidden size 7, the model has 3 of 8' \
  prumux-model shrink -M short.tsv -o x.pmx tiny.pmx
grep -v '^2	head	1	' ones.tsv > fewer.tsv
expect_fail 1 'layer 2: the masks have 1 heads' \
  prumux-model shrink -M fewer.tsv -o x.pmx tiny.pmx
awk -F '\t' -v OFS='\t' '$2 == "hidden" { $4 = 0 } { print }' ones.tsv > none.tsv
expect_fail 1 'every hidden dimension' prumux-model shrink -M none.tsv -o x.pmx tiny.pmx
sed 's/^0	head	0	1$/0	head	0	1.5/' ones.tsv > big.tsv
expect_fail 1 'not a number in \[0, 1\]' prumux-model shrink -M big.tsv -o x.pmx tiny.pmx
[ -e x.pmx ] && fail_ "a failed shrink wrote x.pmx"
ls | grep -q 'x\.pmx\.' && fail_ "a failed shrink left a temporary file"
exit 0
