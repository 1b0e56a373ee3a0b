# tests/init.sh -- sourced by every shell test: a private scratch directory,
# and the helpers fail_, skip_, framework_failure_, expect_fail, compare.
# Tests run under the automake parallel harness: exit 0 = pass, 77 = skip,
# 99 = hard error (the test itself is broken), other = fail.

set -u
: "${abs_top_srcdir:?run tests through make check}"
: "${abs_top_builddir:?run tests through make check}"
srcdir=$abs_top_srcdir
testname=$(basename "$0" .sh)

fail_ () { printf '%s: FAIL: %s\n' "$testname" "$*" >&2; exit 1; }
skip_ () { printf '%s: SKIP: %s\n' "$testname" "$*" >&2; exit 77; }
framework_failure_ () { printf '%s: ERROR: %s\n' "$testname" "$*" >&2; exit 99; }

# A scratch directory, removed at exit unless KEEP=1.
tmp_=$(mktemp -d "${TMPDIR:-/tmp}/prumux-$testname.XXXXXX") \
  || framework_failure_ "cannot create a temporary directory"
cleanup_ () { [ "${KEEP:-0}" = 1 ] || rm -rf "$tmp_"; }
trap cleanup_ EXIT
cd "$tmp_" || framework_failure_ "cannot cd to $tmp_"

# compare EXPECTED ACTUAL: fail with a diff if the files differ.
compare () {
  cmp -s "$1" "$2" && return 0
  diff -u "$1" "$2" >&2 || :
  return 1
}

# expect_fail STATUS PATTERN CMD...: CMD must exit with STATUS and print a
# line matching PATTERN on stderr, and must not crash.
expect_fail () {
  want=$1 pattern=$2; shift 2
  "$@" > out_ 2> err_
  got=$?
  [ "$got" -ge 128 ] && { cat err_ >&2; fail_ "'$*' crashed (status $got)"; }
  [ "$got" = "$want" ] || { cat err_ >&2; fail_ "'$*' exited $got, expected $want"; }
  grep -q -- "$pattern" err_ || { cat err_ >&2; fail_ "'$*': stderr does not match '$pattern'"; }
}

# The Python that has torch (Debian's python3-torch), for reference tests.
torch_python () {
  for p in /usr/bin/python3 python3; do
    "$p" -c 'import torch' 2>/dev/null && { echo "$p"; return 0; }
  done
  return 1
}
