#!/bin/sh
# grid-report.sh -- the summary of a grid.mk run: the measured table (means
# over the seeds with their spread), how that spread compares with the
# accuracy budgets, prumux-fit's leave-one-out errors and budget sweep, and
# the headline: the measured speed-up over the base model (N = 1, s = 0) of
# Auto-PruMUX's choice and of the best measured point at 1- and 5-point
# budgets.
#
#   sh grid-report.sh WORK CLASSES
#
# WORK holds grid.tsv, loo.tsv, sweep.tsv and picks.tsv; CLASSES is the
# number of classes (chance is 1/CLASSES).
set -u
[ $# -eq 2 ] || { echo "usage: grid-report.sh WORK CLASSES" >&2; exit 1; }
w=$1 classes=$2
for f in grid.tsv loo.tsv sweep.tsv picks.tsv; do
  [ -r "$w/$f" ] || { echo "grid-report.sh: $w/$f: missing" >&2; exit 1; }
done
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "PruMUX grid: $(date -u +%Y-%m-%d), CPU: ${cpu:-unknown} ($(getconf _NPROCESSORS_ONLN) cores)"
echo "chance: $(awk -v c="$classes" 'BEGIN { printf "%.4f", 1 / c }')"
echo
awk -F '\t' -v OFS='\t' '
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
$col["N"] == 1 && $col["s"] == 0 { base = $col["throughput"] }
{ row[NR] = $0 }
END {
  printf "%-3s %-5s %-18s %-17s %-9s %-8s %-8s %s\n", "N", "s", "accuracy (sd)", "[min, max]",
    "rows/s", "speedup", "reached", "seeds"
  for (r = 2; r <= NR; r++) {
    split(row[r], f, "\t")
    printf "%-3s %-5s %.4f (%.4f)   [%.4f, %.4f]  %-9.1f %-8.2f %-8.4f %s\n", f[col["N"]], f[col["s"]],
      f[col["accuracy"]], f[col["accuracy_sd"]], f[col["accuracy_min"]], f[col["accuracy_max"]],
      f[col["throughput"]], (base > 0 ? f[col["throughput"]] / base : 0), f[col["reached"]], f[col["seeds"]]
  }
}' "$w/grid.tsv"
echo
awk -F '\t' '
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{ sd[++n] = 100 * $col["accuracy_sd"] }
END {
  if (n == 0) exit
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (sd[j] < sd[i]) { t = sd[i]; sd[i] = sd[j]; sd[j] = t }
  printf "spread over the seeds: accuracy sd median %.2f, largest %.2f points", sd[int((n + 1) / 2)], sd[n]
  printf " (budgets of 1 and 5 points)\n"
}' "$w/grid.tsv"
echo
# The picture in text (grid.png has it with the frontiers).
if command -v "${GNUPLOT:-gnuplot}" > /dev/null 2>&1; then
  t=$(mktemp -d "${TMPDIR:-/tmp}/grid-report.XXXXXX") || exit 1
  awk -F '\t' -v d="$t" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { n = $col["N"]; s = $col["s"] + 0
      k = (n == 1 && s == 0) ? "B" : (n == 1) ? "C" : (s == 0) ? "D" : "P"
      print $col["throughput"] "\t" $col["accuracy"] > (d "/" k) }' "$w/grid.tsv"
  for k in B C D P; do [ -s "$t/$k" ] || printf 'NaN\tNaN\n' > "$t/$k"; done
  echo "accuracy against rows/s (B base, C CoFi only, D DataMUX only, P PruMUX):"
  "${GNUPLOT:-gnuplot}" -e "set terminal dumb size 78,24; set datafile separator '\t';
    set logscale x 2; set key off; set xlabel 'rows/s';
    plot '$t/C' using 1:2 with points pt 'C', '$t/D' using 1:2 with points pt 'D',
         '$t/P' using 1:2 with points pt 'P', '$t/B' using 1:2 with points pt 'B'" 2> /dev/null \
    | tr -d '\f' | sed '/^ *$/d'
  rm -rf "$t"
  echo
fi
echo "leave-one-out (prumux-fit --loo):"
cat "$w/loo.tsv"
echo
echo "budget sweep (prumux-fit --budget-sweep=0:10:1 -k 3):"
cat "$w/sweep.tsv"
echo
# The headline: at budgets 1 and 5, Auto-PruMUX's first pick and the best
# measured point, with their measured throughput over the base model's.
awk -F '\t' '
FILENAME ~ /grid.tsv$/ {
  if (FNR == 1) { for (i = 1; i <= NF; i++) g[$i] = i; next }
  key = $g["N"] "/" ($g["s"] + 0); acc[key] = $g["accuracy"]; thr[key] = $g["throughput"]
  if ($g["N"] == 1 && $g["s"] == 0) { bacc = $g["accuracy"]; bthr = $g["throughput"] }
  next
}
FILENAME ~ /picks.tsv$/ {
  if (FNR == 1) { for (i = 1; i <= NF; i++) p[$i] = i; next }
  if ($p["rank"] == 1) pick[$p["budget"]] = $p["N"] "/" ($p["s"] + 0)
  next
}
END {
  printf "base model (N=1, s=0): accuracy %.4f, %.1f rows/s\n", bacc, bthr
  for (b = 1; b <= 5; b += 4) {
    best = ""; bt = 0
    for (k in acc) if (acc[k] >= bacc - b / 100 && thr[k] > bt) { bt = thr[k]; best = k }
    printf "budget %d point(s): best measured %s (accuracy %.4f) %.2fx", b, best, acc[best], bt / bthr
    k = pick[b]
    if (k != "" && (k in thr))
      printf "; Auto-PruMUX picks %s: measured accuracy %.4f, %.2fx\n", k, acc[k], thr[k] / bthr
    else
      printf "; Auto-PruMUX picks %s\n", (k == "" ? "nothing" : k)
  }
}' "$w/grid.tsv" "$w/picks.tsv"
