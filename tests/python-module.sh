#!/bin/sh
# python-module.sh -- the prumux Python module (share/python/prumux) against
# the C programs: streams both ways byte for byte, archives (uncompressed,
# gzip, xz, zstd where Python reads it) against prumux-model; see
# tests/python-check.py.
. "$abs_top_srcdir/tests/init.sh"

py=
for p in /usr/bin/python3 python3; do
  "$p" -c 'import numpy' 2>/dev/null && { py=$p; break; }
done
[ -n "$py" ] || skip_ "no python3 with numpy"
PYTHONPATH=$srcdir/share/python "$py" "$srcdir/tests/python-check.py" \
  "$abs_top_builddir/bin" "$srcdir" "$tmp_" || fail_ "the Python module"
