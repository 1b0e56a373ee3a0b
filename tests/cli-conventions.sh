#!/bin/sh
# Conventions every prumux program keeps: --help and --version, usage
# errors, missing files, a full disk (/dev/full), and a reader that goes
# away early (| head), which is not an error.
. "$abs_top_srcdir/tests/init.sh"

n=0
for prog in "$abs_top_builddir"/bin/prumux-*; do
  case $prog in *.c|*.o|*.h) continue ;; esac
  [ -x "$prog" ] || continue
  p=$(basename "$prog")
  n=$((n + 1))
  "$p" --help > help.out 2> help.err || fail_ "$p --help: exit status $?"
  head -n 1 help.out | grep -q "^Usage: $p " || fail_ "$p --help does not start with 'Usage: $p'"
  grep -q 'Report bugs to' help.out || fail_ "$p --help lacks the bug-report line"
  [ -s help.err ] && fail_ "$p --help wrote to stderr"
  "$p" --version > ver.out || fail_ "$p --version"
  head -n 1 ver.out | grep -q "^$p (prumux) [0-9]" || fail_ "$p --version: $(head -n 1 ver.out)"
  "$p" -h | cmp -s - help.out || fail_ "$p -h is not --help"
  "$p" -V | cmp -s - ver.out || fail_ "$p -V is not --version"
  # The shared option letters (prumux(7)): a letter of the table that a
  # program documents has the table's meaning.
  for pair in m:model w:weights o:output j:threads T:task L:labels v:verbose \
      q:quiet h:help V:version; do
    l=${pair%%:*} long=${pair#*:}
    grep -E "^  -$l, --" help.out | grep -qv -- "^  -$l, --$long[=[ ]" &&
      fail_ "$p: -$l is not --$long: $(grep -E "^  -$l, --" help.out)"
  done
  expect_fail 1 "Try '$p --help'" "$p" --no-such-option
  "$p" --help > /dev/full 2> full.err && fail_ "$p --help > /dev/full succeeded"
  grep -q "^$p: write error: No space left on device" full.err \
    || fail_ "$p: /dev/full message: $(cat full.err)"
  [ -f "$abs_top_srcdir/man/$p.x" ] || fail_ "$p has no man/$p.x"
done
[ "$n" -ge 1 ] || framework_failure_ "no programs found in $abs_top_builddir/bin"

# Missing input file.
expect_fail 1 '^prumux-cat: no-such-file: No such file or directory' prumux-cat no-such-file

# A closed pipe is a quiet success: | head -c 10 on a large output.
i=0; { printf '#prumux-stream\t1.0\n#record\t0\n#tensor\tx\ti32\t20000\n'
       seq 1 20000 | paste -s -; printf '#end\t1\n'; } > big.tsv
prumux-cat -e big.tsv > big.pmxs || fail_ "encode big"
{ prumux-cat -m 0 big.pmxs 2> pipe.err; echo $? > status; } | head -c 10 > /dev/null
[ "$(cat status)" = 0 ] || fail_ "prumux-cat | head -c 10: exit status $(cat status)"
[ -s pipe.err ] && fail_ "prumux-cat | head -c 10 printed: $(cat pipe.err)"
{ prumux-cat -e big.tsv 2> pipe.err; echo $? > status; } | head -c 10 > /dev/null
[ "$(cat status)" = 0 ] || fail_ "prumux-cat -e | head -c 10: exit status $(cat status)"

# Writing a stream to a full disk fails loudly.
expect_fail 1 'No space left on device' sh -c 'prumux-cat -e big.tsv > /dev/full'
exit 0
