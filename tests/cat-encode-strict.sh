#!/bin/sh
# cat-encode-strict.sh -- prumux-cat -e checks its TSV input as strictly as
# the binary reader: record numbers and the '#end' count, nothing after
# '#end', numbers out of range for their dtype, and a huge declared shape
# costs nothing until its values arrive (ASan would abort on a 40 PB
# allocation).
. "$abs_top_srcdir/tests/init.sh"

head_='#prumux-stream	1.0
#meta	producer	test'
good () {
  printf '%s\n#record\t0\n#tensor\tx\tf32\t2\n1\t2\n#record\t1\n#tensor\tx\tf32\t2\n3\tinf\n#end\t2\n' "$head_"
}
good > good.tsv
prumux-cat -e good.tsv -o good.pmxs || fail_ "a good TSV was refused"
prumux-cat -f tsv good.pmxs | tail -n +3 > back.tsv
tail -n +3 good.tsv | compare - back.tsv || fail_ "round trip"
# Empty lines after #end are fine.
{ good; echo; echo; } > trail.tsv
prumux-cat -e trail.tsv -o /dev/null || fail_ "empty lines after #end refused"

# enc PATTERN: the TSV on stdin must be refused with PATTERN.
enc () {
  cat > in.tsv
  expect_fail 1 "$1" prumux-cat -e in.tsv -o out.pmxs
  [ -e out.pmxs ] && fail_ "an output was left for '$1'"
  :
}
{ good; echo '#record	2'; } | enc "in.tsv:10: content after '#end'"
{ good; echo 'junk'; } | enc "in.tsv:10: content after '#end'"
good | sed 's/^#record\t1$/#record\t5/' | enc "#record says 5, but 1 record came before"
good | sed 's/^#record\t0$/#record\t1/' | enc "#record says 1, but 0 records came before"
good | sed 's/^#end\t2$/#end\t3/' | enc "#end says 3, but 2 records came before"
good | sed 's/^#end\t2$/#end/' | enc "expected a record number after: #end"
good | sed 's/^#record\t1$/#record\tone/' | enc "expected a record number after: #record"

# Out of range: an error, not a silent infinity (or a wrapped integer).
good | sed 's/^3\tinf$/3\t1e39/' | enc "in.tsv:8: value out of range for the dtype: 1e39"
good | sed 's/^3\tinf$/3\t-1e39/' | enc "value out of range for the dtype: -1e39"
good | sed 's/^3\tinf$/3\t1e400/' | enc "value out of range for the dtype: 1e400"
printf '%s\n#record\t0\n#tensor\tx\tf16\t1\n70000\n#end\t1\n' "$head_" \
  | enc "value out of range for the dtype: 70000"
printf '%s\n#record\t0\n#tensor\tx\tbf16\t1\n1e39\n#end\t1\n' "$head_" \
  | enc "value out of range for the dtype: 1e39"
printf '%s\n#record\t0\n#tensor\tx\tf64\t1\n1e39\n#end\t1\n' "$head_" > f64.tsv
prumux-cat -e f64.tsv -o /dev/null || fail_ "f64 1e39 refused"
printf '%s\n#record\t0\n#tensor\tx\tf32\t2\n1e-50\t-inf\n#end\t1\n' "$head_" > small.tsv
prumux-cat -e small.tsv -o /dev/null || fail_ "f32 underflow or -inf refused"

# A declared shape allocates nothing before its values: these end early.
printf '%s\n#record\t0\n#tensor\tx\tf32\t99999999x99999999\n1\t2\n' "$head_" \
  | enc "tensor larger than the stream's limit"
printf '%s\n#record\t0\n#tensor\tx\tf32\t1000x1000\n1\t2\n' "$head_" \
  | enc "too few values in row of: x"
printf '%s\n#record\t0\n#tensor\tx\ti8\t100000x10000\n' "$head_" \
  | enc "input ends inside tensor: x"
exit 0
