#!/bin/sh
# completion.sh -- the bash completion (share/bash-completion/prumux),
# sourced in bash and driven as bash does (COMP_WORDS, COMP_CWORD): every
# program completes every long option of its --help; option values, files,
# and after 'prumux' the command names and then the command's options.
. "$abs_top_srcdir/tests/init.sh"

command -v bash > /dev/null || skip_ "no bash"
bin=$abs_top_builddir/bin
mkdir sub && : > model.pmx && : > notes.txt
cat > drive.bash <<'BASH'
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMPREPLY=()
_prumux_complete
printf '%s\n' "${COMPREPLY[@]}"
BASH
c () { bash drive.bash "$srcdir/share/bash-completion/prumux" "$@"; }

n=0
for p in "$bin"/prumux-*; do
  [ -x "$p" ] && [ -f "$p" ] || continue
  prog=${p##*/}
  grep -qw -- "$prog" "$srcdir/share/bash-completion/prumux" \
    || fail_ "$prog is not registered with complete"
  c "$prog" -- > got || fail_ "$prog: completion failed"
  "$prog" --help | sed -n 's/^ \{1,8\}\(-., \)\{0,1\}\(--[a-z0-9-]*\).*/\2/p' \
    | sort -u > want
  sed 's/=$//' got | sort -u > have
  [ -s want ] || fail_ "$prog --help lists no options"
  missing=$(comm -23 want have)
  [ -z "$missing" ] || fail_ "$prog: options not completed: $missing"
  n=$((n + 1))
done
[ "$n" -ge 10 ] || fail_ "only $n programs found"

[ "$(c prumux-export --ou)" = "--output=" ] || fail_ "prumux-export --ou"
[ "$(c prumux-tokenize --max-l)" = "--max-length=" ] || fail_ "--max-l"
c prumux-tokenize - | grep -qx -- '-m' || fail_ "short options"
[ "$(c prumux-model info mod)" = "model.pmx" ] || fail_ "file names"
[ "$(c prumux-export --output=su)" = "--output=sub" ] || fail_ "option values"
[ "$(c prumux tok)" = "tokenize" ] || fail_ "prumux tok"
c prumux '' | grep -qx export || fail_ "prumux: the command names"
[ "$(c prumux tokenize --max-l)" = "--max-length=" ] || fail_ "prumux tokenize --max-l"
[ "$(c prumux export m)" = "model.pmx" ] || fail_ "prumux export: file names"
[ "$(c prumux help exp)" = "export" ] || fail_ "prumux help exp"
exit 0
