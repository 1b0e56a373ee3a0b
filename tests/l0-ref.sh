#!/bin/sh
# CoFi's hard-concrete masks (lib/prune/l0.c) against a PyTorch reference written
# from MUX-PLM-SPEC.md §6 (tests/ref-l0.py states the tolerances): a
# training sample with the same noise and its backward, cdf_qz, the
# deterministic masks, the expected sparsity (BERT-base: 85,017,600
# prunable), the Lagrangian and every gradient.
. "$abs_top_srcdir/tests/init.sh"
"$abs_top_builddir/tests/test-l0" dump.txt || fail_ "test-l0 failed"
py=$(torch_python) || skip_ "no Python with torch"
"$py" "$srcdir/tests/ref-l0.py" dump.txt > ref.log 2>&1 \
  || { cat ref.log >&2; fail_ "C and PyTorch disagree"; }
cat ref.log
exit 0
