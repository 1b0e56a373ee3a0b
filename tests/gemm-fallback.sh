#!/bin/sh
# gemm-fallback.sh -- where OpenBLAS runs generic code (Debian's 0.3.21 on
# CPUs it does not know; forced here with OPENBLAS_CORETYPE=Prescott),
# attention's products run on our kernels (pmx_sgemm), prumux-infer -v
# says so, and the logits stay within 1e-5 of the run with OpenBLAS's
# native kernels.  Skipped on CPUs without AVX2, where OpenBLAS is all
# there is.
. "$abs_top_srcdir/tests/init.sh"
m=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
g=$srcdir/share/prumux/sample-glosses.tsv
grep -qw avx2 /proc/cpuinfo 2>/dev/null || skip_ "no AVX2: OpenBLAS runs everything"
prumux-tokenize -m "$m" -f 2 -l 1 "$g" | prumux-mux -m "$m" > emb.pmxs ||
  framework_failure_ "tokenize | mux"
prumux-infer -m "$m" -p all emb.pmxs > native.pmxs 2> native.err ||
  fail_ "native run"
OPENBLAS_CORETYPE=Prescott prumux-infer -m "$m" -p all -v emb.pmxs \
  > generic.pmxs 2> generic.err || fail_ "generic run"
grep -Eq 'attention on (avx512|avx2),' generic.err ||
  { cat generic.err >&2; fail_ "-v does not name our kernels for attention"; }
for f in native generic; do
  prumux-demux -m "$m" --emit=logits $f.pmxs > $f.tsv || fail_ "demux $f"
done
[ "$(wc -l < native.tsv)" = 24 ] || fail_ "not 24 rows"
awk -F '\t' 'NR == FNR { for (i = 1; i <= NF; i++) a[FNR, i] = $i; next }
  { for (i = 1; i <= NF; i++) { d = $i - a[FNR, i]; if (d < 0) d = -d
      if (d > 1e-5) { print "row " FNR " col " i ": " a[FNR, i] " vs " $i; bad = 1 } } }
  END { exit bad }' native.tsv generic.tsv || fail_ "logits differ by more than 1e-5"
exit 0
