#!/bin/sh
# model-compressed.sh -- compressed model archives are checked whole when
# they are opened: a flipped byte anywhere is refused unless the archive
# still unpacks to exactly the same bytes (gzip's CRC-32, zstd's content
# checksum, xz's check); zstd archives carry that checksum; an archive
# whose tensors.pmxs or tail inflates beyond what its config.json can need
# is refused early (decompression bombs), as is a tensors.pmxs whose first
# bytes are not a stream's magic.
. "$abs_top_srcdir/tests/init.sh"

tm=$abs_top_builddir/tests/test-model
command -v zstd > /dev/null || skip_ "no zstd program"
for z in gzip zstd xz; do
  "$tm" --write-tiny t.$z.pmx $z || framework_failure_ "test-model --write-tiny $z"
  prumux-model info t.$z.pmx > /dev/null || fail_ "the $z archive does not load"
done
"$tm" --write-tiny t.pmx || framework_failure_ "test-model --write-tiny"
zstd -lv t.zstd.pmx 2> /dev/null | grep -q 'Check: XXH64' \
  || fail_ "the zstd archive has no content checksum"

unpack () {
  case $1 in
    *.gzip.pmx) gzip -dc < "$1" ;;
    *.zstd.pmx) zstd -q -dc < "$1" ;;
    *.xz.pmx) xz -dc < "$1" ;;
  esac
}

# Flip bytes (every 29th position, and the last 8, gzip's trailer).
for z in gzip zstd xz; do
  f=t.$z.pmx
  unpack $f > want.tar || framework_failure_ "unpack $f"
  size=$(wc -c < $f)
  caught=0
  for pos in $(seq 0 29 $((size - 1))) $(seq $((size - 8)) $((size - 1))); do
    cp $f x.$z.pmx
    printf '\125' | dd of=x.$z.pmx bs=1 seek=$pos conv=notrunc 2>/dev/null
    cmp -s $f x.$z.pmx && continue
    prumux-model info x.$z.pmx > /dev/null 2> err
    rc=$?
    [ $rc -ge 128 ] && fail_ "$z: flipped at $pos: crashed"
    if [ $rc = 0 ]; then
      # Loaded: only if the flip changed nothing that the archive holds.
      unpack x.$z.pmx 2>/dev/null | cmp -s - want.tar \
        || fail_ "$z: flipped at $pos of $size: corrupt data loaded"
    else
      caught=$((caught + 1))
    fi
  done
  [ $caught -gt 0 ] || fail_ "$z: no flip was caught"
done

# gzip's CRC-32 and length are checked (libarchive itself does not).
cp t.gzip.pmx x.gzip.pmx
size=$(wc -c < x.gzip.pmx)
printf '\000\000\000\000' | dd of=x.gzip.pmx bs=1 seek=$((size - 8)) conv=notrunc 2>/dev/null
expect_fail 1 'x.gzip.pmx: gzip data is corrupt' prumux-model info x.gzip.pmx

# Bombs.  A tensors.pmxs of 64 MiB behind the tiny model's config.json
# (whose tensors need a few kilobytes) is refused by its declared size.
mkdir m && (cd m && tar xf ../t.pmx) || framework_failure_ "tar x"
cp m/tensors.pmxs tensors.orig
truncate -s 64M m/tensors.pmxs || framework_failure_ "truncate"
(cd m && tar --format=ustar -cf - prumux-model config.json vocab.txt tensors.pmxs) \
  | zstd -q -c > bomb.zstd.pmx || framework_failure_ "tar | zstd"
expect_fail 1 "bomb.zstd.pmx: tensors.pmxs: member of 67108864 bytes exceeds" \
  prumux-model info bomb.zstd.pmx
# One of a size the configuration allows but not a stream: refused on the
# first block, by its magic.
head -c 100000 /dev/zero > m/tensors.pmxs
(cd m && tar --format=ustar -cf - prumux-model config.json vocab.txt tensors.pmxs) \
  | gzip -c > bad.gzip.pmx || framework_failure_ "tar | gzip"
expect_fail 1 'bad.gzip.pmx: tensors.pmxs: not a prumux stream (bad magic)' \
  prumux-model info bad.gzip.pmx
# 100 MiB of zeros after the tar's end: refused once past what the
# configuration can need, not read to the end.
cp tensors.orig m/tensors.pmxs
{ (cd m && tar --format=ustar -cf - prumux-model config.json vocab.txt tensors.pmxs) \
  && head -c 104857600 /dev/zero; } | zstd -q -c > tail.zstd.pmx \
  || framework_failure_ "tar + zeros | zstd"
expect_fail 1 'tail.zstd.pmx: unpacks to more than' prumux-model info tail.zstd.pmx
# Compressed, config.json must come before tensors.pmxs (it bounds it).
(cd m && tar --format=ustar -cf - prumux-model tensors.pmxs config.json vocab.txt) \
  | gzip -c > order.gzip.pmx || framework_failure_ "tar | gzip"
expect_fail 1 'config.json: missing (a compressed archive needs it before' \
  prumux-model info order.gzip.pmx
exit 0
