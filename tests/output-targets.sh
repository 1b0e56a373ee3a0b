#!/bin/sh
# output-targets.sh -- what -o does to what is already at the path, for the
# programs' outputs (cli.c) and the library's archive writer (test-model
# --write-tiny, the path of prumux-convert and prumux-train): a symlink is
# followed and stays a link, a FIFO or device is written through and not
# replaced, a file keeps its mode (and, run as root, its owner), a
# hard-linked file is rewritten in place (both names see the data), a
# directory is refused; SIGTERM and SIGHUP leave no temporary file behind
# (lib/core/outfile.h).
. "$abs_top_srcdir/tests/init.sh"

tm=$abs_top_builddir/tests/test-model
printf '#prumux-stream\t1.0\n#meta\tproducer\ttest\n#record\t0\n#tensor\tx\ti32\t3\n1\t2\t3\n#end\t1\n' > s.tsv
prumux-cat -e s.tsv -o ref || framework_failure_ "prumux-cat -e"
"$tm" --write-tiny ref.pmx || framework_failure_ "test-model --write-tiny"

# write KIND PATH: write PATH with program KIND (cat or model); the
# expected contents are in ref or ref.pmx.
write () {
  case $1 in
    cat) prumux-cat -e s.tsv -o "$2" ;;
    model) "$tm" --write-tiny "$2" ;;
  esac
}
expected () { case $1 in cat) echo ref ;; model) echo ref.pmx ;; esac; }

for k in cat model; do
  e=$(expected $k)
  # A symlink is followed: the target is replaced, the link stays.
  mkdir -p d.$k && echo old > d.$k/target && ln -s d.$k/target link.$k
  write $k link.$k || fail_ "$k: -o symlink"
  [ -L link.$k ] || fail_ "$k: the symlink was replaced by a file"
  compare "$e" d.$k/target || fail_ "$k: the symlink's target was not written"
  ls d.$k | grep -q 'XXX\|\.' && fail_ "$k: temporary file left: $(ls d.$k)"
  # A dangling symlink: its target is created.
  ln -s d.$k/new dangling.$k
  write $k dangling.$k || fail_ "$k: -o dangling symlink"
  [ -L dangling.$k ] && compare "$e" d.$k/new || fail_ "$k: dangling symlink"

  # The mode of a replaced file is kept.
  echo old > mode.$k && chmod 600 mode.$k
  write $k mode.$k || fail_ "$k: -o 0600 file"
  case $(ls -l mode.$k) in -rw-------*) ;; *) fail_ "$k: mode not kept: $(ls -l mode.$k)" ;; esac
  compare "$e" mode.$k || fail_ "$k: 0600 file not written"

  # Run as root, the owner and group are kept too.
  if [ "$(id -u)" = 0 ]; then
    echo old > own.$k && chown 65534:65534 own.$k && chmod 640 own.$k
    write $k own.$k || fail_ "$k: -o a file of another owner"
    [ "$(stat -c %u:%g:%a own.$k)" = 65534:65534:640 ] \
      || fail_ "$k: owner or mode not kept: $(stat -c %u:%g:%a own.$k)"
  fi

  # A hard-linked file is rewritten in place: both names see the data.
  echo old > h1.$k && ln h1.$k h2.$k
  write $k h1.$k || fail_ "$k: -o hard link"
  compare "$e" h2.$k || fail_ "$k: the hard link was split"

  # A FIFO is written through: a reader gets the data, the FIFO remains.
  mkfifo fifo.$k || skip_ "no mkfifo"
  cat fifo.$k > got.$k &
  reader=$!
  write $k fifo.$k || fail_ "$k: -o FIFO"
  wait $reader
  [ -p fifo.$k ] || fail_ "$k: the FIFO was replaced"
  compare "$e" got.$k || fail_ "$k: the FIFO's reader did not get the data"

  # Devices are written, never replaced: /dev/null takes it, /dev/full
  # reports the error.
  write $k /dev/null || fail_ "$k: -o /dev/null"
  [ -c /dev/null ] || fail_ "$k: /dev/null is no longer a device"
  if [ -c /dev/full ]; then
    write $k /dev/full 2> err && fail_ "$k: -o /dev/full succeeded"
    grep -q 'No space left on device' err || { cat err >&2; fail_ "$k: /dev/full message"; }
    [ -c /dev/full ] || fail_ "$k: /dev/full is no longer a device"
  fi

  # A directory is refused.
  mkdir dir.$k
  write $k dir.$k 2> err && fail_ "$k: -o directory succeeded"
  grep -q 'Is a directory' err || { cat err >&2; fail_ "$k: directory message"; }
done

# "write error" is said once (the check of stdout at exit does not repeat
# what a die() already said).
if [ -c /dev/full ]; then
  prumux-cat -e s.tsv > /dev/full 2> err && fail_ "stdout /dev/full succeeded"
  [ "$(grep -c 'write error' err)" = 1 ] || { cat err >&2; fail_ "write error not said once"; }
  prumux-cat -f tsv ref > /dev/full 2> err && fail_ "stdout /dev/full succeeded"
  [ "$(grep -c 'write error' err)" = 1 ] || { cat err >&2; fail_ "write error not said once (text)"; }
fi

# A writer killed before it commits leaves neither the target nor a
# temporary file (SIGINT is ignored in background jobs of a script, so
# TERM and HUP stand for all three).  A signal this script was started
# with ignored (HUP under nohup) stays ignored in the writer, as it should:
# that case is skipped.
# ignored_on_entry NUM: whether signal NUM is ignored in this shell.
ignored_on_entry () {
  m=$(sed -n 's/^SigIgn:[[:space:]]*//p' "/proc/$$/status" 2>/dev/null)
  [ -n "$m" ] && [ $(( (0x$m >> ($1 - 1)) & 1 )) = 1 ]
}
for sig in TERM:15 HUP:1; do
  num=${sig#*:} sig=${sig%:*}
  if ignored_on_entry "$num"; then
    echo "SIG$sig is ignored here (nohup?): not tried"
    continue
  fi
  mkdir sig.$sig
  (sleep 2; cat s.tsv) | prumux-cat -e -o sig.$sig/out &
  pid=$!
  i=0
  while [ -z "$(ls sig.$sig)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  [ -n "$(ls sig.$sig)" ] || framework_failure_ "no temporary file appeared"
  kill -$sig $pid
  wait $pid
  rc=$?
  [ $rc -gt 128 ] || fail_ "SIG$sig: exit status $rc, not killed by the signal"
  [ -z "$(ls sig.$sig)" ] || fail_ "SIG$sig left $(ls sig.$sig)"
done
exit 0
