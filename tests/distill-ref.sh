#!/bin/sh
# CoFi's distillation losses (L_pred at T = 2, layer distillation version 4
# with its greedy alignment) and their gradients against PyTorch autograd
# (tests/ref-distill.py states the tolerances).
. "$abs_top_srcdir/tests/init.sh"
py=$(torch_python) || skip_ "no Python with torch"
"$abs_top_builddir/tests/test-distill" . > c.log || { cat c.log >&2; fail_ "test-distill failed"; }
cat c.log
"$py" "$srcdir/tests/ref-distill.py" . > ref.log 2>&1 \
  || { cat ref.log >&2; fail_ "C and PyTorch disagree"; }
cat ref.log
exit 0
