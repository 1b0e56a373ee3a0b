"""Read prumux model archives (.pmx, prumux-model(5)) with numpy.

An archive is a tar file, uncompressed or compressed whole with gzip, xz or
zstd, whose members are, in order: the marker "prumux-model", config.json,
vocab.txt (optional) and tensors.pmxs, a tensor stream of f32 weights.
"""

import io
import json
import tarfile

import numpy as np

from . import stream

MARKER_NAME = "prumux-model"
MARKER_TEXT = "prumux model archive, format "
FORMAT_VERSION = 1
CONFIG_MAX = 16 << 20
VOCAB_MAX = 64 << 20

__all__ = ["Model", "open_model"]


class Model:
    """A model archive in memory.

    path      the file read
    config    the configuration (config.json) as a dict
    id        the archive's identity, config["id"]
    vocab     the vocabulary as a list of tokens (None if the archive has none)
    tensors   {name: float32 ndarray}, in archive order
    """

    def __init__(self, path, config, vocab, tensors):
        self.path = path
        self.config = config
        self.id = config.get("id")
        self.vocab = vocab
        self.tensors = tensors

    def __getitem__(self, name):
        return self.tensors[name]

    def __contains__(self, name):
        return name in self.tensors

    def __repr__(self):
        c = self.config
        return (f"<prumux.Model {self.path!r} id {self.id}: {c.get('layers')} layers, "
                f"hidden {c.get('hidden')}, mux_n {c.get('mux_n')}, "
                f"{len(self.tensors)} tensors>")

    def tensor_table(self):
        """[(name, dtype, shape, elements)] as `prumux-model tensors` lists them."""
        return [(k, stream.dtype_name(v), tuple(v.shape), int(v.size))
                for k, v in self.tensors.items()]

    def layer_shapes(self):
        """[(heads, ffn)] per layer, from the tensors (0: pruned away)."""
        c, out = self.config, []
        for l in range(c["layers"]):
            q = self.tensors.get(f"encoder.layer.{l}.attention.self.query.weight")
            f = self.tensors.get(f"encoder.layer.{l}.intermediate.dense.weight")
            out.append((q.shape[0] // c["head_dim"] if q is not None else 0,
                        f.shape[0] if f is not None else 0))
        return out

    def dataframe(self):
        """The tensor table as a pandas DataFrame (needs pandas)."""
        import pandas as pd
        return pd.DataFrame(self.tensor_table(),
                            columns=["name", "dtype", "shape", "elements"])


def _open_tar(path):
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:4] == b"\x28\xb5\x2f\xfd":
        # zstd: tarfile reads it from Python 3.14; before that, through the
        # zstandard module if it is installed.
        try:
            return tarfile.open(path, "r:zst")
        except (tarfile.CompressionError, ValueError, tarfile.ReadError):
            pass
        try:
            import zstandard
        except ImportError:
            raise stream.FormatError(
                f"{path}: a zstd-compressed archive needs Python 3.14 or the "
                "zstandard module (or: prumux-convert -z none)") from None
        with open(path, "rb") as f:
            data = zstandard.ZstdDecompressor().stream_reader(f).read()
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    return tarfile.open(path, "r:*")


def open_model(path):
    """Read and check the archive PATH; a Model.  Raises FormatError
    ("PATH: member: ...") for anything that is not a valid archive."""
    def fail(msg):
        raise stream.FormatError(f"{path}: {msg}")

    try:
        tar = _open_tar(path)
    except tarfile.TarError:
        fail("not a model archive (not a tar file, or compressed with a method"
             " Python cannot read)")
    config = vocab = tensors = None
    with tar:
        for i, m in enumerate(tar):
            if i == 0 and m.name != MARKER_NAME:
                fail(f"not a model archive: the first member is '{m.name}'")
            if not m.isfile():
                fail(f"member '{m.name}' is not a regular file")
            limit = {"config.json": CONFIG_MAX, "vocab.txt": VOCAB_MAX}.get(m.name)
            if limit and m.size > limit:
                fail(f"{m.name}: {m.size} bytes exceed {limit}")
            f = tar.extractfile(m)
            if m.name == MARKER_NAME:
                text = f.read(256).decode("ascii", "replace")
                if not text.startswith(MARKER_TEXT) or not text.endswith("\n"):
                    fail(f"{MARKER_NAME}: not a prumux model archive marker")
                if text[len(MARKER_TEXT):].strip() != str(FORMAT_VERSION):
                    fail(f"{MARKER_NAME}: archive format {text[len(MARKER_TEXT):].strip()}"
                         f" is not supported ({FORMAT_VERSION})")
            elif m.name == "config.json":
                try:
                    config = json.loads(f.read().decode("utf-8"))
                except ValueError as e:
                    fail(f"config.json: invalid JSON: {e}")
                if not isinstance(config, dict):
                    fail("config.json: not a JSON object")
                if config.get("format_version") != FORMAT_VERSION:
                    fail(f"config.json: format_version {config.get('format_version')}")
            elif m.name == "vocab.txt":
                vocab = f.read().decode("utf-8").split("\n")
                if vocab and vocab[-1] == "":
                    vocab.pop()
            elif m.name == "tensors.pmxs":
                tensors = {}
                with stream.Reader(f, name=f"{path}: tensors.pmxs") as r:
                    if r.meta.get("content") != "model-tensors":
                        fail("tensors.pmxs: not a model-tensors stream")
                    for rec in r:
                        for k, v in rec.items():
                            if k in tensors:
                                fail(f"tensors.pmxs: tensor '{k}' appears twice")
                            if v.dtype != np.float32:
                                fail(f"tensors.pmxs: tensor '{k}' is not f32")
                            tensors[k] = v
            else:
                fail(f"unexpected member '{m.name}'")
    if config is None or tensors is None:
        fail("not a model archive: no config.json" if config is None
             else "no tensors.pmxs")
    if vocab is not None and len(vocab) > config.get("vocab_size", 0):
        fail(f"vocab.txt: {len(vocab)} tokens, more than vocab_size")
    return Model(path, config, vocab, tensors)
