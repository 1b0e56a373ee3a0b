#!/bin/sh
# Whole-model gradients and ten AdamW steps against PyTorch autograd
# (tests/ref-train.py states the tolerances): a MUX-BERT with N = 2 (task +
# retrieval; MLM + retrieval), N = 3 (retrieval, frozen embeddings), and a plain BERT with a
# padding mask and CoFi-pruned sublayers (also: gradient accumulation over
# two micro-batches equals the whole batch's gradient, |diff| <= 1e-6 +
# 1e-5 max |grad|); and under CoFi masks, N = 2 and N = 1, with gradients
# added from outside on every hidden state and the logits: loss, weight and
# mask gradients (zmux, zplain).  Every variant also runs a task-only step
# with dropout with and without head_rows_only (the last layer on position
# 0's rows alone): the same loss and logits, gradients within 1e-6 + 1e-5
# max |grad|; plain itself runs under it.
. "$abs_top_srcdir/tests/init.sh"
py=$(torch_python) || skip_ "no Python with torch"
for v in mux mlm mux3 plain zmux zplain; do
  mkdir $v || framework_failure_ "mkdir"
  "$abs_top_builddir/tests/test-train-ref" $v $v > $v.c.log \
    || { cat $v.c.log >&2; fail_ "test-train-ref $v failed"; }
  grep -e accumulation -e 'head rows' $v.c.log || :
  "$py" "$srcdir/tests/ref-train.py" $v > $v.log 2>&1 \
    || { cat $v.log >&2; fail_ "$v: C and PyTorch disagree"; }
  sed "s/^/$v: /" $v.log
done
exit 0
