#!/bin/sh
# gpu-bundle.sh -- a self-contained bundle of the CUDA build, for a GPU
# machine that has the NVIDIA driver and CUDA toolkit but neither this
# project's build tools nor its libraries (the device machines lent to
# sessions have no package registries).  Run from the top of a source tree:
#
#   sh tests/gpu-bundle.sh OUT.tar.xz [BUILDDIR]
#
# Configures BUILDDIR (default: gpu-bundle.d, beside OUT) with --with-cuda
# --enable-static --disable-shared, so that the programs are plain
# executables rather than libtool wrappers, builds the programs, the per-op
# harness and the encoder benchmark, and packs them with config.h and the
# shared libraries they load, found with ldd (the CUDA runtime among them),
# except the C and C++ runtimes, the driver and cuBLAS (the GPU machine's
# toolkit has cuBLAS; tests/gpu-check.sh finds it).
# tests/gpu-check.sh runs the bundle without make.  ~16 MB with Debian 12's
# OpenBLAS and libarchive (xz).
set -eu
out=${1:?usage: gpu-bundle.sh OUT.tar.xz [BUILDDIR]}
src=$(cd "$(dirname "$0")/.." && pwd)
case $out in /*) ;; *) out=$(pwd)/$out;; esac
build=${2:-$(dirname "$out")/gpu-bundle.d}
mkdir -p "$build"
build=$(cd "$build" && pwd)
[ -f "$src/configure" ] || (cd "$src" && autoreconf -fi)
cd "$build"
if [ ! -f Makefile ]; then
  "$src/configure" --with-cuda --enable-static --disable-shared > configure.log \
    || { cat configure.log; exit 1; }
fi
grep -q '^#define HAVE_CUDA 1' config.h || { echo "gpu-bundle.sh: configured without CUDA" >&2; exit 1; }
make -j"$(nproc)" > make.log 2>&1 || { tail -30 make.log; exit 1; }
make -j"$(nproc)" tests/test-backend bench/encoder-bench >> make.log 2>&1 || { tail -30 make.log; exit 1; }
head -c 4 bin/prumux-infer | grep -q ELF \
  || { echo "gpu-bundle.sh: bin/prumux-infer is not an executable (a shared build?)" >&2; exit 1; }

pack=$build/pack
rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/tests" "$pack/bench" "$pack/lib"
for f in bin/prumux*; do
  case $f in *.o) ;; *) cp "$f" "$pack/bin/";; esac
done
cp tests/test-backend "$pack/tests/"
cp bench/encoder-bench "$pack/bench/"
cp config.h "$pack/"
for lib in $(ldd "$pack"/bin/* "$pack/tests/test-backend" | awk '/=> \//{ print $3 }' | sort -u); do
  case ${lib##*/} in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libstdc++.so*) ;;
    libcuda.so*|libcublas*) ;;
    *) cp -L "$lib" "$pack/lib/";;
  esac
done
tar cJf "$out.tmp" -C "$pack" . && mv "$out.tmp" "$out"
echo "$out: $(du -h "$out" | cut -f1); $(ls "$pack/bin" | wc -l) programs, $(ls "$pack/lib" | wc -l) libraries"
