"""python-check.py -- tests of the prumux Python module (share/python/prumux)
against the C programs; run by tests/python-module.sh with PYTHONPATH set.

    python-check.py BINDIR SRCDIR WORKDIR

Streams: a stream written by the module, with every dtype and ranks 0 to
3, is valid for prumux-cat --check, and survives prumux-cat's exact TSV
form and --encode unchanged; the module re-writes streams written by the C
programs (prumux-cat --encode, prumux-tokenize) byte for byte; truncated
and corrupt input raise FormatError as prumux-cat fails.  Archives: the
shipped model archive and gzip and xz archives read with the tensor table
of `prumux-model tensors`, the configuration of `prumux-model -f json
info`, and tensors.pmxs rebuilt byte for byte from the arrays read.
"""
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np

import prumux

bindir, srcdir, wd = sys.argv[1:4]
failures = []


def ok(cond, what):
    print(f"{'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        failures.append(what)


def run(*cmd, data=None):
    p = subprocess.run([os.path.join(bindir, cmd[0]), *cmd[1:]], input=data,
                       capture_output=True)
    if p.returncode:
        raise SystemExit(f"FAIL: {' '.join(cmd)}: {p.stderr.decode()}")
    return p.stdout


def same(r1, r2):
    return len(r1) == len(r2) and all(
        list(a) == list(b) and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
                                   and np.array_equal(a[k], b[k], equal_nan=True)
                                   for k in a)
        for a, b in zip(r1, r2))


# ---- streams -------------------------------------------------------------------
rng = np.random.default_rng(7)
recs = []
for i, B in enumerate((3, 1, 0, 5)):
    recs.append({"row": np.arange(B, dtype=np.int64) + 10 * i,
                 "ids": rng.integers(-2**31, 2**31, (B, 7)).astype(np.int32),
                 "logits": rng.standard_normal((B, 3)).astype(np.float32),
                 "half": rng.standard_normal((B, 2, 2)).astype(np.float16),
                 "wide": rng.standard_normal(B).astype(np.float64),
                 "small": rng.integers(-128, 128, B).astype(np.int8),
                 "bytes": rng.integers(0, 256, B).astype(np.uint8),
                 "shorts": rng.integers(-2**15, 2**15, (B, 1)).astype(np.int16),
                 "scalar": np.float32(i + 0.5),
                 "empty": np.zeros((0, 4), np.float32)})
recs[1]["logits"][0, 0] = np.nan
recs[3]["logits"][1, 2] = -np.inf
meta = {"producer": "python-check.py", "stage": "logits", "model": "0123abcd" * 4,
        "note": "a value with = and spaces"}
py_stream = prumux.dumps(recs, meta)
run("prumux-cat", "--check", "-", data=py_stream)
ok(True, f"prumux-cat --check accepts the module's stream ({len(py_stream)} bytes, "
   f"{len(recs)} records, 8 dtypes, ranks 0-3)")
tsv = run("prumux-cat", "-f", "tsv", "-", data=py_stream)
c_stream = run("prumux-cat", "--encode", "-", data=tsv)
m2, r2 = prumux.loads(c_stream)
ok(same(recs, r2), "records survive prumux-cat -f tsv | prumux-cat -e (values, dtypes, shapes)")
ok(all(m2.get(k) == v for k, v in meta.items()), f"metadata survives: {m2}")
ok(prumux.dumps(r2, m2) == c_stream,
   "the module re-writes prumux-cat --encode's stream byte for byte")

model = os.path.join(srcdir, "share/prumux/wordnet-lexfile-n2.pmx")
texts = os.path.join(srcdir, "share/prumux/sample-glosses.tsv")
tok = run("prumux-tokenize", "-m", model, "-f", "2", "--batch=5", texts)
mt, rt = prumux.loads(tok)
ok(prumux.dumps(rt, mt) == tok and len(rt) > 1,
   f"the module re-writes prumux-tokenize's stream byte for byte ({len(rt)} records)")
# Streaming from a pipe-like file object, one record at a time.
n = sum(1 for _ in prumux.records(io.BufferedReader(io.BytesIO(tok))))
ok(n == len(rt), "prumux.records reads a stream record by record")
# Writing to a path is atomic and readable by the C programs.
path = os.path.join(wd, "out.pmxs")
with prumux.Writer(path, {"stage": "tokens"}) as w:
    for r in rt:
        w.write(r)
ok(open(path, "rb").read() == prumux.dumps(rt, {"stage": "tokens"})
   and sorted(os.listdir(wd)).count("out.pmxs") == 1
   and not [f for f in os.listdir(wd) if f.startswith("out.pmxs.")],
   "Writer(path) writes the file atomically (no temporary left)")
if importlib.util.find_spec("pandas"):
    df = prumux.dataframe(rt)
    ok(len(df) == sum(len(r["row"]) for r in rt) and list(df.index[:3]) == [0, 1, 2],
       f"dataframe: {df.shape[0]} rows, columns {list(df.columns)[:4]}...")
cols = prumux.columns(recs)
ok(list(cols["row"]) == [0, 1, 2, 10, 30, 31, 32, 33, 34]
   and cols["logits_2"].shape == (9,) and "empty" not in cols and "scalar" not in cols,
   "columns: per-row tensors concatenated, (B, K) split into K columns")

# Bad input: every cut of a stream is an error, as for prumux-cat.
cuts = [0, 5, 64, 100, len(py_stream) // 2, len(py_stream) - 64, len(py_stream) - 1]
bad = 0
for cut in cuts:
    try:
        prumux.loads(py_stream[:cut])
    except prumux.FormatError as e:
        bad += ("unexpected end of stream" in str(e) or "too short" in str(e))
c_rejects = sum(subprocess.run([os.path.join(bindir, "prumux-cat"), "-c", "-"],
                               input=py_stream[:cut], capture_output=True).returncode == 1
                for cut in cuts)
ok(bad == len(cuts) and c_rejects == len(cuts),
   f"truncated streams: {bad}/{len(cuts)} FormatErrors, prumux-cat rejects {c_rejects}")
corrupt = bytearray(py_stream)
corrupt[py_stream.index(b"TENS") + 32] ^= 0x40     # first tensor's data length
for what, data, want in (("bad magic", b"hello world" * 10, "bad magic"),
                         ("a corrupt tensor header", bytes(corrupt), "record 0: tensor")):
    try:
        prumux.loads(data)
        ok(False, f"{what}: no error")
    except prumux.FormatError as e:
        ok(want in str(e), f"{what}: FormatError '{e}'")
try:
    prumux.dumps([{"x": np.zeros(2, np.uint32)}])
    ok(False, "uint32 refused")
except TypeError as e:
    ok("no prumux type" in str(e), "a dtype prumux lacks is refused")

# ---- archives ------------------------------------------------------------------
gz, xz = os.path.join(wd, "m.pmx.gz"), os.path.join(wd, "m-xz.pmx")
hf = os.path.join(wd, "hf")
run("prumux-export", model, "-o", hf)
run("prumux-convert", "-z", "gzip", hf, "-o", gz)
run("prumux-convert", "-z", "xz", hf, "-o", xz)
first = None
for path in (model, gz, xz):
    table = [line.split("\t") for line in
             run("prumux-model", "tensors", path).decode().splitlines()]
    info = json.loads(run("prumux-model", "-f", "json", "info", path))
    with tarfile.open(path) as t:
        member = t.extractfile("tensors.pmxs").read()
    m = prumux.open_model(path)
    got = [[k, d, "x".join(map(str, s)), str(n)] for k, d, s, n in m.tensor_table()]
    ok(got == table, f"{os.path.basename(path)}: the tensor table of prumux-model tensors "
       f"({len(got)} tensors)")
    ok(all(m.config[k] == v for k, v in info.items() if k in m.config) and m.id == info["id"],
       f"{os.path.basename(path)}: the configuration of prumux-model info (id {m.id})")
    ok(prumux.dumps([m.tensors], {"content": "model-tensors"}) == member,
       f"{os.path.basename(path)}: tensors.pmxs rebuilt byte for byte from the arrays")
    if importlib.util.find_spec("pandas"):
        t = m.dataframe()
        ok(list(t["name"]) == [r[0] for r in table] and int(t["elements"].sum())
           == sum(int(r[3]) for r in table), f"{os.path.basename(path)}: Model.dataframe")
    ok(len(m.vocab) == 6116 and m.vocab[101] == "[CLS]" and m.layer_shapes() == [(2, 256)] * 2,
       f"{os.path.basename(path)}: vocab and layer shapes")
zst = os.path.join(wd, "m-zstd.pmx")
run("prumux-convert", "-z", "zstd", hf, "-o", zst)
try:
    m = prumux.open_model(zst)
    ok(m.tensor_table() == prumux.open_model(model).tensor_table(), "zstd archive")
except prumux.FormatError as e:
    ok("zstandard" in str(e), f"zstd archive without support: '{e}'")
for what, data in (("not an archive", b"plain text\n" * 100),):
    p = os.path.join(wd, "bad.pmx")
    open(p, "wb").write(data)
    try:
        prumux.open_model(p)
        ok(False, f"{what}: no error")
    except prumux.FormatError as e:
        ok(str(e).startswith(p + ": "), f"{what}: FormatError '{e}'")

print("FAILED: " + "; ".join(failures) if failures else "all passed")
sys.exit(1 if failures else 0)
