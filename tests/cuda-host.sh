#!/bin/sh
# cuda-host.sh -- the CUDA backend as far as a machine without a GPU can
# check it.  A build with CUDA has the backend linked into libprumux (its
# table exported, the runtime needed, GPU code for sm_80 and
# sm_90 and PTX for compute_90 in the object, cuBLAS loaded only when a
# GPU is used, and loadable: the no-GPU message below comes after it), bad
# cuda variants are
# refused by name, and --device=cuda:0 on a machine without a usable GPU
# exits 1 with a clear message instead of crashing.  Where a GPU answers,
# its hidden states must be within 1e-4 of the CPU's (tests/gpu-check.sh
# does the full GPU run).  A build without CUDA says so for cuda:0.
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || py=/usr/bin/python3
"$py" -c 'import numpy' 2>/dev/null || skip_ "no python3 with numpy"

# Tiny weights (H 8, one layer of 2 heads of 4, FFN 16) and two sequences.
"$py" - "$srcdir/tests" <<'PYEOF' || framework_failure_ "cannot write the test streams"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import pmxstream
import tiny_encoder
r = np.random.default_rng(1)
def f(*s): return r.standard_normal(s).astype(np.float32)
w = tiny_encoder.weights(r)
pmxstream.write("w.pmxs", [w], tiny_encoder.META)
em = {"embeds": f(2, 5, 8), "lengths": np.array([5, 3], np.int32)}
pmxstream.write("in.pmxs", [em], {"model": "feedface", "stage": "embeds"})
PYEOF

prumux-infer --help | grep -q "'cuda:K'" || fail_ "--help does not name cuda:K"
lib=$abs_top_builddir/lib/.libs/libprumux.so
[ -f "$lib" ] || skip_ "no shared libprumux to inspect"

if ! grep -q '^#define HAVE_CUDA 1' "$abs_top_builddir/config.h"; then
  expect_fail 1 "device 'cuda:0': this prumux was built without CUDA" \
    prumux-infer -w w.pmxs --device=cuda:0 in.pmxs
  nm -D --defined-only "$lib" | grep -q ' pmx_cuda_backend$' \
    && fail_ "a build without CUDA exports pmx_cuda_backend"
  exit 0
fi

# Built and linked.
nm -D --defined-only "$lib" | grep -q ' D pmx_cuda_backend$' \
  || fail_ "libprumux does not export pmx_cuda_backend"
# The runtime is linked; cuBLAS (half a gigabyte with cuBLASLt) is opened
# when a GPU is first used, so programs that do not use one start fast.
needed=$(objdump -p "$lib" | awk '$1 == "NEEDED" { print $2 }')
echo "$needed" | grep -q '^libcudart\.so' || fail_ "libprumux does not need libcudart: $needed"
echo "$needed" | grep -q '^libcublas' && fail_ "libprumux links cuBLAS at start-up: $needed"
grep -q 'libcublas\.so\.' "$lib" || fail_ "libprumux does not name libcublas.so to load it"
obj=$abs_top_builddir/lib/.libs/cuda-encoder.o
nvcc=$(sed -n 's/^NVCC = //p' "$abs_top_builddir/Makefile")
cuobjdump=$(dirname "$nvcc")/cuobjdump
if [ -x "$cuobjdump" ] && [ -f "$obj" ]; then
  # The default NVCCFLAGS (configure.ac): sm_80 and sm_90 code, compute_90 PTX.
  if sed -n 's/^NVCCFLAGS = //p' "$abs_top_builddir/Makefile" | grep -q 'code=sm_90'; then
    "$cuobjdump" --list-elf "$obj" > elf || fail_ "cuobjdump --list-elf"
    "$cuobjdump" --list-ptx "$obj" > ptx || fail_ "cuobjdump --list-ptx"
    grep -q 'sm_80' elf && grep -q 'sm_90' elf || fail_ "no sm_80 / sm_90 code: $(cat elf)"
    grep -q 'sm_90' ptx || fail_ "no compute_90 PTX: $(cat ptx)"
  fi
fi

# Devices by name.
expect_fail 1 "device 'cuda:x': unknown CUDA device 'x' (K or K:tf32" \
  prumux-infer -w w.pmxs --device=cuda:x in.pmxs
expect_fail 1 "device 'cuda:0:fp16': unknown CUDA device '0:fp16'" \
  prumux-infer -w w.pmxs --device=cuda:0:fp16 in.pmxs
expect_fail 1 "unknown device 'gpu' (devices: .*cuda:K, cuda:K:tf32)" \
  prumux-infer -w w.pmxs --device=gpu in.pmxs

# No GPU here: a clear message and exit 1, for the option and for
# PRUMUX_DEVICE; with a GPU, the CPU's hidden states within 1e-4.
prumux-infer -w w.pmxs -p all --device=cpu in.pmxs > cpu.pmxs || fail_ "cpu run"
for dev in cuda:0 cuda cuda:0:tf32 cuda:63; do
  prumux-infer -w w.pmxs -p all --device=$dev in.pmxs > gpu.pmxs 2> err
  rc=$?
  [ $rc -ge 128 ] && { cat err >&2; fail_ "--device=$dev crashed (status $rc)"; }
  if [ $rc = 0 ]; then
    tol=1e-4
    [ $dev = cuda:0:tf32 ] && tol=1e-2
    "$py" - "$srcdir/tests" cpu.pmxs gpu.pmxs $tol <<'PYEOF' || fail_ "$dev differs from cpu"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import pmxstream
a = pmxstream.read(sys.argv[2])[1][0]["hidden"]
b = pmxstream.read(sys.argv[3])[1][0]["hidden"]
d = float(np.abs(a - b).max())
print(f"{sys.argv[3]}: max |gpu - cpu| = {d:.3g}")
sys.exit(0 if d <= float(sys.argv[4]) else 1)
PYEOF
  else
    [ $rc = 1 ] || { cat err >&2; fail_ "--device=$dev exited $rc"; }
    grep -Eq "^prumux-infer: device '$dev': no (usable CUDA GPU|CUDA GPU 63)" err \
      || { cat err >&2; fail_ "--device=$dev: unclear message"; }
    sed 's/^/  /' err
  fi
done
if ! PRUMUX_DEVICE=cuda:0 prumux-infer -w w.pmxs in.pmxs > /dev/null 2> err; then
  grep -q "^prumux-infer: device 'cuda:0': no usable CUDA GPU" err \
    || fail_ "PRUMUX_DEVICE=cuda:0: $(cat err)"
fi
exit 0
