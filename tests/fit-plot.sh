#!/bin/sh
# fit-plot.sh -- prumux-fit --plot: PNG and SVG through gnuplot, and a
# clear error (no file left behind) when gnuplot is missing or fails.
. "$abs_top_srcdir/tests/init.sh"

grid=$srcdir/share/prumux/prumux-sample-grid.tsv

GNUPLOT=no-such-gnuplot-here expect_fail 1 \
  "^prumux-fit: --plot: gnuplot not found ('no-such-gnuplot-here')" \
  prumux-fit -q --plot p.png "$grid"
[ -e p.png ] && fail_ "a failed plot left p.png"
GNUPLOT=false expect_fail 1 "^prumux-fit: --plot: false failed (exit status 1)" \
  prumux-fit -q --plot p.png "$grid"
[ -e p.png ] && fail_ "a failed plot left p.png"
ls -A | grep -q '^p\.png\.' && fail_ "a failed plot left a temporary file"

# Nothing drawable (no model has both numbers): an error, no file.
printf 'task\tN\ts\taccuracy\tthroughput\na\t1\t0\tNA\t5\n' > empty.tsv
expect_fail 1 "^prumux-fit: --plot: nothing to draw" \
  prumux-fit -q --plot e.svg empty.tsv
grep -q "task a: no model with both accuracy and throughput" err_ \
  || fail_ "empty panel not explained"
[ -e e.svg ] && fail_ "a failed plot left e.svg"

command -v gnuplot > /dev/null 2>&1 || skip_ "gnuplot is not installed"

# Plot only: nothing on stdout, a PNG file.
prumux-fit -q --plot p.png "$grid" > out || fail_ "plot"
[ -s out ] && fail_ "--plot alone wrote to stdout"
[ "$(head -c 4 p.png | od -An -c | tr -d ' ')" = '211PNG' ] || fail_ "not a PNG"
[ "$(wc -c < p.png)" -gt 10000 ] || fail_ "PNG suspiciously small"

# With a budget: the picks on stdout, and an SVG with every series named.
prumux-fit -q -b 3 --task mnli --plot p.svg "$grid" > out || fail_ "svg"
[ "$(wc -l < out)" = 4 ] || fail_ "picks missing with --plot"
for s in '<svg' 'base model' 'CoFi only' 'DataMUX only' 'PruMUX' \
         'DataMUX-only frontier' 'CoFi-only frontier' 'PruMUX (Pareto) frontier' 'Auto-PruMUX picks' 'mnli'; do
  grep -q "$s" p.svg || fail_ "SVG lacks '$s'"
done
exit 0
