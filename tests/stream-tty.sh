#!/bin/sh
# A binary stream is not written to a terminal (as gzip refuses): every
# program that writes one exits 1 with a clear message when its standard
# output is a terminal, unless --force; to a pipe or a file it just works.
# The terminal is a pseudo-terminal made by Python's pty module.
. "$abs_top_srcdir/tests/init.sh"
command -v python3 > /dev/null || skip_ "python3 is needed for a pseudo-terminal"
m=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
printf 'a dog\nthe rain in spain\nan old house\n' > in.txt
prumux-tokenize -m "$m" in.txt > tok.pmxs || fail_ "tokenize"
prumux-mux -m "$m" tok.pmxs > emb.pmxs || fail_ "mux"
prumux-infer -m "$m" emb.pmxs > hid.pmxs || fail_ "infer"
prumux-cat -f tsv tok.pmxs > tok.tsv || fail_ "cat"

# on_tty STATUS CMD...: run CMD with standard output on a pseudo-terminal;
# it must exit with STATUS, and with 1 say why on standard error.
on_tty () {
  python3 - "$@" <<'PY' || fail_ "on a terminal: $*"
import os, pty, subprocess, sys
want = int(sys.argv[1]); cmd = sys.argv[2:]
master, slave = pty.openpty()
# Drain the terminal so that --force never blocks on a full pty buffer.
p = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE)
os.close(slave)
while True:
    try:
        if not os.read(master, 65536):
            break
    except OSError:             # EIO: the child closed its side
        break
err = p.stderr.read().decode()
rc = p.wait()
if rc != want:
    sys.exit(f"{cmd}: exit status {rc}, expected {want}: {err}")
if want == 1 and "standard output is a terminal" not in err:
    sys.exit(f"{cmd}: no clear message: {err}")
PY
}

for cmd in "prumux-tokenize -m $m in.txt" "prumux-mux -m $m tok.pmxs" \
           "prumux-infer -m $m emb.pmxs" "prumux-demux -m $m -f stream hid.pmxs" \
           "prumux-cat -e tok.tsv"; do
  on_tty 1 $cmd
  on_tty 0 $cmd --force
done
# Text output is fine on a terminal, and so is a stream written to a file.
on_tty 0 prumux-demux -m "$m" hid.pmxs
on_tty 0 prumux-tokenize -m "$m" -F tsv in.txt
on_tty 0 prumux-mux -m "$m" -o out.pmxs tok.pmxs
prumux-cat --check out.pmxs || fail_ "-o FILE on a terminal"
exit 0
