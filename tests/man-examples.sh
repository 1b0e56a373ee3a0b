#!/bin/sh
# The man pages: every EXAMPLES block runs, and the generated pages have
# real NAME lines and the data directory filled in.  The blocks are taken from
# the man/*.x sources: in the [EXAMPLES] section, each .nf ... .fi block is
# a shell script (roff escapes \e, \\, \-, \& and \(aq undone, .RS/.RE
# dropped, @pkgdatadir@ the source tree's share/prumux), run by bash with
# -e and pipefail; any non-zero exit fails the test.  Markers, roff
# comments on the lines before a block:
#   .\" example-setup: COMMAND   run first, unseen by readers; exit 77
#                                skips the block (a missing optional tool)
#   .\" example-skip: REASON     do not run the block (it needs files that
#                                make check has not, such as a published
#                                checkpoint), saying why
# The blocks of one page run in order in one directory that holds the
# shipped demo model and sample files under the names the pages use:
#   model.pmx      share/prumux/wordnet-lexfile-n2.pmx (N = 2, 8 classes,
#                  max length 32)
#   dev.tsv, train.tsv  share/prumux/sample-glosses.tsv (label TAB gloss)
#   sentences.txt  share/prumux/sample-sentences.txt
#   grid.tsv       share/prumux/prumux-sample-grid.tsv
. "$abs_top_srcdir/tests/init.sh"
command -v bash > /dev/null || skip_ "bash is needed"
command -v python3 > /dev/null || skip_ "python3 is needed to extract the examples"
share=$srcdir/share/prumux

# The built pages themselves: a real NAME line (not help2man's "manual page
# for" placeholder), the data directory substituted, no made-up contact.
for page in "$abs_top_builddir"/man/prumux-*.1; do
  [ -f "$page" ] || framework_failure_ "no man pages built"
  grep -q 'manual page for' "$page" && fail_ "$page: placeholder NAME line"
  grep -q '@pkgdatadir@' "$page" && fail_ "$page: @pkgdatadir@ not substituted"
  grep -qi 'report bugs\|github\.com' "$page" && fail_ "$page: names a contact that does not exist"
done

python3 - "$srcdir/man" "$share" <<'PY' || framework_failure_ "cannot extract the examples"
import glob, os, re, sys
man, share = sys.argv[1], sys.argv[2]
esc = re.compile(r"\\(e|\\|-|&|\(aq)")
def unroff(line):
    return esc.sub(lambda m: {"e": "\\", "\\": "\\", "-": "-", "&": "", "(aq": "'"}[m.group(1)],
                   line).replace("@pkgdatadir@", share)
for x in sorted(glob.glob(os.path.join(man, "*.x"))):
    page = os.path.basename(x)[:-2]
    lines = open(x).read().split("\n")
    sect, block, setup, skip, n = None, None, [], None, 0
    os.makedirs(page, exist_ok=True)
    for no, line in enumerate(lines, 1):
        if re.match(r"^\[[<=>]?[A-Z ]+\]$", line):
            sect = line.strip("[]<=>")
            continue
        if sect != "EXAMPLES":
            continue
        if block is None:
            m = re.match(r'^\.\\" example-(setup|skip): (.*)$', line)
            if m and m.group(1) == "setup":
                setup.append(m.group(2))
            elif m:
                skip = m.group(2)
            elif line == ".nf":
                block = []
                start = no
            continue
        if line == ".fi":
            n += 1
            base = os.path.join(page, "%02d" % n)
            with open(base + ".where", "w") as f:
                f.write("man/%s.x:%d\n" % (page, start))
            if skip:
                open(base + ".skip", "w").write(skip + "\n")
            else:
                with open(base + ".setup", "w") as f:
                    f.write("".join(s + "\n" for s in setup))
                with open(base + ".sh", "w") as f:
                    f.write("".join(unroff(l) + "\n" for l in block))
            block, setup, skip = None, [], None
        elif line in (".RS", ".RE") or line.startswith('.\\"'):
            continue
        elif line.startswith("."):
            sys.exit("man/%s.x:%d: roff request inside an example: %s" % (page, no, line))
        else:
            block.append(line)
    if block is not None:
        sys.exit("man/%s.x:%d: .nf without .fi" % (page, start))
    if n == 0:
        sys.exit("man/%s.x: no EXAMPLES blocks" % page)
PY

ran=0
for dir in prumux-*; do
  (cd "$dir" && cp "$share/wordnet-lexfile-n2.pmx" model.pmx \
     && cp "$share/sample-glosses.tsv" dev.tsv && cp dev.tsv train.tsv \
     && cp "$share/sample-sentences.txt" sentences.txt \
     && cp "$share/prumux-sample-grid.tsv" grid.tsv) \
    || framework_failure_ "cannot set up $dir"
  for where in "$dir"/*.where; do
    b=${where%.where}; at=$(cat "$where")
    if [ -f "$b.skip" ]; then
      echo "$at: skipped: $(cat "$b.skip")"
      continue
    fi
    (cd "$dir" && bash -e "../$b.setup" > /dev/null 2>&1); st=$?
    if [ $st = 77 ]; then
      echo "$at: skipped: its setup says a tool is missing"
      continue
    fi
    [ $st = 0 ] || fail_ "$at: the setup failed"
    echo "$at:"; sed 's/^/    /' "$b.sh"
    (cd "$dir" && timeout 300 bash -e -o pipefail "../$b.sh" < /dev/null > "../$b.out" 2> "../$b.err")
    st=$?
    sed 's/^/  stderr: /' "$b.err"
    [ $st = 0 ] || fail_ "$at: the example exits with status $st"
    ran=$((ran + 1))
  done
done
echo "$ran examples ran"
[ $ran -ge 10 ] || fail_ "only $ran examples ran"
exit 0
