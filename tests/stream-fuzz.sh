#!/bin/sh
# Random corruption of a valid stream fed to prumux-cat: any exit status 0 or
# 1 is acceptable, a crash (signal) or a hang is not.  The C unit test
# (test-stream) does the same at a larger scale inside one process.
. "$abs_top_srcdir/tests/init.sh"

printf '#prumux-stream\t1.0\n#meta\tproducer\tfuzz\n#record\t0\n#tensor\tids\ti32\t2x4\n1\t2\t3\t4\n5\t6\t7\t8\n#tensor\th\tf32\t2x2x2\n1\t2\n3\t4\n5\t6\n7\t8\n#end\t1\n' \
  | prumux-cat -e > good.pmxs || fail_ "cannot build the stream"
size=$(wc -c < good.pmxs)
seed=1
n=0
while [ "$n" -lt 300 ]; do
  seed=$(( (seed * 1103515245 + 12345) % 2147483648 ))
  off=$(( seed % size ))
  byte=$(( (seed / 65536) % 256 ))
  { head -c "$off" good.pmxs; printf "\\$(printf %03o "$byte")"; tail -c +$((off + 2)) good.pmxs; } > bad.pmxs
  timeout 10 prumux-cat -f json bad.pmxs > /dev/null 2> err
  rc=$?
  [ "$rc" -le 1 ] || fail_ "offset $off byte $byte: exit status $rc: $(cat err)"
  n=$((n + 1))
done
exit 0
