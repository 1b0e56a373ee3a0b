#!/bin/sh
# A stream cut at any byte offset must be rejected with a clear message and
# exit status 1 (never 0, never a crash); the whole stream must pass.
. "$abs_top_srcdir/tests/init.sh"

printf '#prumux-stream\t1.0\n#meta\tk\tv\n#record\t0\n#tensor\tids\ti32\t2x3\n1\t2\t3\n4\t5\t6\n#tensor\tx\tf16\t2\n0.5\t-2\n#record\t1\n#tensor\trow\ti64\t1\n7\n#end\t2\n' \
  | prumux-cat -e > full.pmxs || fail_ "cannot build the stream"
size=$(wc -c < full.pmxs)
prumux-cat --check full.pmxs || fail_ "the whole stream was rejected"

i=0
while [ "$i" -lt "$size" ]; do
  head -c "$i" full.pmxs > cut.pmxs
  prumux-cat --check cut.pmxs 2> err
  rc=$?
  [ "$rc" = 1 ] || fail_ "prefix of $i bytes: exit status $rc"
  grep -q '^prumux-cat: cut.pmxs' err || fail_ "prefix of $i bytes: message '$(cat err)'"
  i=$((i + 1))
done
# The same through a pipe (no seeking).
head -c 300 full.pmxs | prumux-cat > /dev/null 2> err && fail_ "truncated pipe accepted"
grep -q 'truncated' err || fail_ "no 'truncated' in '$(cat err)'"
exit 0
