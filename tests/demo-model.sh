#!/bin/sh
# The classifier shipped as the README's embedded default
# (share/prumux/wordnet-lexfile-n2.pmx, N = 2, trained by prumux-train with
# share/prumux/experiment.mk) is a valid archive and classifies the shipped
# sample glosses through the four-stage pipeline: one line per input line,
# label names from the model, the accuracy this model is known to reach on
# them, and the same bytes from the in-process run.
. "$abs_top_srcdir/tests/init.sh"

m=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
texts=$srcdir/share/prumux/sample-glosses.tsv
prumux-model verify "$m" > /dev/null || fail_ "the shipped model does not verify"
prumux-model info "$m" | grep -q '^mux_n: *2$' || fail_ "the shipped model is not N = 2"

prumux-tokenize -m "$m" --fields=2 --label-field=1 "$texts" > tok.pmxs || fail_ "tokenize"
prumux-mux -m "$m" tok.pmxs | prumux-infer -m "$m" | prumux-demux -m "$m" --eval=eval.txt \
  > pred.tsv || fail_ "pipeline"
[ "$(wc -l < pred.tsv)" = "$(wc -l < "$texts")" ] || fail_ "line count differs from the input"
cut -f 1 pred.tsv | grep -v -q '^noun\.' && fail_ "labels are not the model's names"
grep -q "^accuracy	0.875000$" eval.txt || { cat eval.txt >&2; fail_ "accuracy changed"; }
prumux-infer --from-ids -m "$m" tok.pmxs | prumux-demux -m "$m" > fused.tsv || fail_ "--from-ids"
compare pred.tsv fused.tsv || fail_ "in-process run differs"
exit 0
