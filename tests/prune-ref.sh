#!/bin/sh
# Whole CoFi pruning steps with fixed noise against PyTorch autograd
# (tests/ref-prune.py states the tolerances): teacher forward, masked
# student, both distillation losses, the Lagrangian of the expected
# sparsity, and four updates of the model, the log alphas and the
# multipliers; N = 2 and N = 1.
. "$abs_top_srcdir/tests/init.sh"
py=$(torch_python) || skip_ "no Python with torch"
for v in mux plain; do
  mkdir $v || framework_failure_ "mkdir"
  "$abs_top_builddir/tests/test-prune-ref" $v $v > $v.c.log \
    || { cat $v.c.log >&2; fail_ "test-prune-ref $v failed"; }
  "$py" "$srcdir/tests/ref-prune.py" $v > $v.log 2>&1 \
    || { cat $v.c.log $v.log >&2; fail_ "$v: C and PyTorch disagree"; }
  sed "s/^/$v: /" $v.log
done
exit 0
