#!/bin/sh
# grid-means.sh -- grid.mk's points.tsv (one row per task, N, s and seed)
# to prumux-fit's input: per (task, N, s) the mean accuracy and throughput
# over the seeds (the columns prumux-fit reads), then their spread:
# sample standard deviation, minimum and maximum of the accuracy, the
# standard deviation of the throughput, the mean sparsity reached and the
# number of seeds.  Rows keep the order of their first appearance.
#
#   sh grid-means.sh points.tsv > grid.tsv
exec awk -F '\t' -v OFS='\t' '
NR == 1 {
  for (i = 1; i <= NF; i++) col[$i] = i
  if (!("accuracy" in col) || !("throughput" in col) || !("reached" in col)) {
    print "grid-means.sh: " FILENAME ": not a points table" > "/dev/stderr"; bad = 1; exit 1
  }
  next
}
{
  key = $col["task"] OFS $col["N"] OFS $col["s"]
  if (!(key in n)) order[++keys] = key
  a = $col["accuracy"] + 0; t = $col["throughput"] + 0
  n[key]++; sa[key] += a; saa[key] += a * a; st[key] += t; stt[key] += t * t
  sr[key] += $col["reached"]
  if (!(key in lo) || a < lo[key]) lo[key] = a
  if (!(key in hi) || a > hi[key]) hi[key] = a
}
function sd(s, ss, k) { return k > 1 ? sqrt(((ss - s * s / k) > 0 ? ss - s * s / k : 0) / (k - 1)) : 0 }
END {
  if (bad) exit 1
  print "task", "N", "s", "accuracy", "throughput", "accuracy_sd", "accuracy_min", "accuracy_max", "throughput_sd", "reached", "seeds"
  for (q = 1; q <= keys; q++) {
    k = order[q]; m = n[k]
    printf "%s\t%.6f\t%.1f\t%.6f\t%.6f\t%.6f\t%.1f\t%.4f\t%d\n", k, sa[k] / m, st[k] / m, \
      sd(sa[k], saa[k], m), lo[k], hi[k], sd(st[k], stt[k], m), sr[k] / m, m
  }
}' "$@"
