"""Read and write prumux tensor streams (prumux-stream(5)) with numpy.

A stream is a preamble, one META frame (key=value text), records of named
tensors and an END frame.  The reader checks every length, shape and name
as the C reader does and raises FormatError("NAME: record 3: tensor 'x':
...") on bad input; it reads frame by frame, so it works on pipes and
never holds more than one record.  The writer produces byte for byte what
the prumux programs write for the same records and metadata.
"""

import io
import re
import struct
import sys

import numpy as np

MAGIC = b"\x89PMX\r\n\x1a\n"
MAJOR, MINOR = 1, 0
ALIGN = 64
MAX_RANK = 8
NAME_MAX = 255
MAX_TENSORS = 256
META_MAX = 1 << 20
TENSOR_LIMIT = 1 << 32

# dtype code -> numpy dtype (little-endian).  bf16 (3) has no numpy type:
# it is read as float32 (exact) unless raw_bf16 asks for its uint16 bits.
DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f2"), 3: np.dtype("<u2"),
          4: np.dtype("<f8"), 5: np.dtype("i1"), 6: np.dtype("u1"),
          7: np.dtype("<i2"), 8: np.dtype("<i4"), 9: np.dtype("<i8")}
NAMES = {1: "f32", 2: "f16", 3: "bf16", 4: "f64", 5: "i8", 6: "u8", 7: "i16",
         8: "i32", 9: "i64"}
_CODES = {np.dtype(np.float32): 1, np.dtype(np.float16): 2, np.dtype(np.float64): 4,
          np.dtype(np.int8): 5, np.dtype(np.uint8): 6, np.dtype(np.int16): 7,
          np.dtype(np.int32): 8, np.dtype(np.int64): 9}
_META_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")

__all__ = ["FormatError", "Reader", "Writer", "read", "write", "loads", "dumps",
           "records", "dtype_name"]


class FormatError(ValueError):
    """Input that is not a valid prumux stream; the message names the input,
    the record and the tensor."""


def dtype_name(a):
    """The prumux name of an array's dtype ("f32", "i64", ...)."""
    return NAMES[_CODES[np.dtype(a.dtype).newbyteorder("=")]]


def _pad(n):
    return -n % ALIGN


# ---- reading ----------------------------------------------------------------

class Reader:
    """Iterate over the records of a stream: ``for rec in Reader(f)``, each
    a dict {name: ndarray} in stream order.  F is a binary file object or a
    path ("-" is standard input).  ``meta`` is the metadata dict, read on
    opening; ``count`` the records read so far.  Arrays are writable copies
    in native byte order.

    max_tensor: largest tensor payload accepted (bytes; default 4 GiB).
    raw_bf16: give bf16 tensors as their uint16 bit patterns."""

    def __init__(self, f, name=None, max_tensor=TENSOR_LIMIT, raw_bf16=False):
        self._own = None
        if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__"):
            if f == "-":
                f, name = sys.stdin.buffer, name or "-"
            else:
                name = name or str(f)
                f = self._own = open(f, "rb")
        self.name = name or getattr(f, "name", "-")
        self._f = f
        self._max = max_tensor
        self._raw_bf16 = raw_bf16
        self.count = 0
        self.ended = False
        try:
            self._preamble()
            self.meta = self._meta()
        except BaseException:
            self.close()
            raise

    def _fail(self, msg, record=None):
        where = self.name + (f": record {record}" if record is not None else "")
        raise FormatError(f"{where}: {msg}")

    def _read(self, n, what, record=None):
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self._f.readinto(view[got:]) if hasattr(self._f, "readinto") else None
            if k is None:
                chunk = self._f.read(n - got)
                k = len(chunk)
                view[got:got + k] = chunk
            if not k:
                self._fail(f"unexpected end of stream (in the {what})", record)
            got += k
        return buf

    def _preamble(self):
        head = bytearray()
        while len(head) < 64:
            chunk = self._f.read(64 - len(head))
            if not chunk:
                break
            head += chunk
        if len(head) < 64:
            if head[:len(MAGIC)] == MAGIC[:len(head)] and head:
                self._fail("unexpected end of stream (in the preamble)")
            self._fail("not a prumux stream (too short)" if len(head) < 8
                       else "not a prumux stream (bad magic)")
        if head[:8] != MAGIC:
            self._fail("not a prumux stream (bad magic)")
        major, minor, bom = struct.unpack_from("<HHI", head, 8)
        if major != MAJOR:
            self._fail(f"stream version {major}.{minor} is not supported (major {MAJOR})")
        if head[12:16] != b"\x04\x03\x02\x01":
            self._fail("big-endian streams are not supported")
        self.version = (major, minor)

    def _frame(self, record=None):
        """(kind, flags, payload) of the next frame."""
        h = self._read(16, "frame header", record)
        kind, flags, length = bytes(h[:4]), *struct.unpack_from("<IQ", h, 4)
        if not all(0x20 <= c < 0x7F for c in kind):
            self._fail(f"frame kind {kind!r} is not printable", record)
        if (16 + length) % ALIGN:
            self._fail(f"{kind.decode()} frame length {length} is not aligned", record)
        if kind not in (b"META", b"RECD", b"TENS", b"END "):
            # An unknown kind: skipped (a later minor version's), unless
            # critical; never held in memory whole.
            if flags & 1:
                self._fail(f"unknown critical frame kind '{kind.decode()}'", record)
            while length:
                k = min(length, 1 << 20)
                self._read(k, kind.decode() + " frame", record)
                length -= k
            return kind, flags, None
        if kind == b"TENS" and length > self._max + (1 << 16):
            self._fail(f"tensor frame of {length} bytes exceeds the limit", record)
        if kind != b"TENS" and length > META_MAX + ALIGN:
            self._fail(f"{kind.decode()} frame of {length} bytes is too long", record)
        if kind in (b"RECD", b"END ") and length < 16:
            self._fail(f"{kind.decode().strip()} frame of {length} bytes is too short", record)
        return kind, flags, self._read(length, kind.decode().strip() + " frame", record)

    def _meta(self):
        kind, _, body = self._frame()
        if kind != b"META":
            self._fail(f"expected META after the preamble, found {kind.decode()}")
        text = bytes(body).split(b"\0", 1)[0]
        if len(text) > META_MAX:
            self._fail("metadata exceeds 1 MiB")
        meta = {}
        try:
            text = text.decode("utf-8", "strict")
        except UnicodeDecodeError:
            self._fail("metadata is not UTF-8")
        for n, line in enumerate(text.split("\n")[:-1], 1):
            key, eq, value = line.partition("=")
            if not eq or not _META_KEY.match(key) or "\r" in value:
                self._fail(f"metadata line {n} is not key=value")
            meta[key] = value
        if text and not text.endswith("\n"):
            self._fail("metadata does not end with a newline")
        return meta

    def _tensor(self, body, record, names):
        code, rank, nlen, _r, off, nbytes = struct.unpack_from("<BBHIQQ", body)
        if code not in DTYPES:
            self._fail(f"tensor: unknown dtype code {code}", record)
        if rank > MAX_RANK:
            self._fail(f"tensor: rank {rank} exceeds {MAX_RANK}", record)
        if len(body) < 24 + 8 * rank:
            self._fail("tensor: frame too short for its header", record)
        if not 1 <= nlen <= NAME_MAX or 24 + 8 * rank + nlen > len(body):
            self._fail(f"tensor: name length {nlen} is invalid", record)
        shape = struct.unpack_from(f"<{rank}Q", body, 24)
        raw = bytes(body[24 + 8 * rank:24 + 8 * rank + nlen])
        if any(c <= 0x20 or c == 0x7F for c in raw):
            self._fail("tensor: name has a control or space byte", record)
        name = raw.decode("utf-8", "replace")
        ctx = f"tensor '{name}'"
        if name in names:
            self._fail(f"{ctx}: name repeated in the record", record)
        dt = DTYPES[code]
        need = dt.itemsize
        for d in shape:
            need *= d
        if need != nbytes:
            self._fail(f"{ctx}: payload is {nbytes} bytes but the shape needs {need}", record)
        if nbytes > self._max:
            self._fail(f"{ctx}: {nbytes} bytes exceed the limit", record)
        if off % ALIGN or off < 40 + 8 * rank + nlen or off + nbytes > 16 + len(body):
            self._fail(f"{ctx}: data offset {off} is invalid", record)
        a = np.frombuffer(body, dtype=dt, count=nbytes // dt.itemsize,
                          offset=off - 16).reshape(shape)
        if code == 3 and not self._raw_bf16:
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return name, a.astype(dt.newbyteorder("="), copy=False)

    def __iter__(self):
        return self

    def __next__(self):
        if self.ended:
            raise StopIteration
        while True:
            kind, flags, body = self._frame(self.count)
            if kind == b"RECD":
                break
            if kind == b"END ":
                n = struct.unpack_from("<Q", body)[0] if len(body) >= 8 else -1
                if n != self.count:
                    self._fail(f"END frame counts {n} records, the stream has {self.count}")
                self.ended = True
                raise StopIteration
            if kind in (b"META", b"TENS"):
                self._fail(f"unexpected {kind.decode()} frame", self.count)
        number, count = struct.unpack_from("<QI", body)
        if number != self.count:
            self._fail(f"record number {number}, expected {self.count}", self.count)
        if count > MAX_TENSORS:
            self._fail(f"{count} tensors exceed {MAX_TENSORS}", self.count)
        rec = {}
        while len(rec) < count:
            kind, flags, tbody = self._frame(self.count)
            if kind == b"TENS":
                name, a = self._tensor(tbody, self.count, rec)
                rec[name] = a
            elif kind in (b"META", b"RECD", b"END "):
                self._fail(f"{kind.decode().strip()} frame inside a record of "
                           f"{count} tensors", self.count)
        self.count += 1
        return rec

    def close(self):
        if self._own:
            self._own.close()
            self._own = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read(f, **kw):
    """(meta, records) of the whole stream F (a path, "-", or a binary
    file), records a list of {name: ndarray}."""
    with Reader(f, **kw) as r:
        recs = list(r)
        return r.meta, recs


def records(f, **kw):
    """Iterate over the records of F without keeping them."""
    with Reader(f, **kw) as r:
        yield from r


def loads(data, **kw):
    """(meta, records) of a stream held in bytes."""
    return read(io.BytesIO(data), name=kw.pop("name", "<bytes>"), **kw)


# ---- writing ----------------------------------------------------------------

def _frame(kind, payload):
    payload = bytes(payload)
    payload += b"\0" * _pad(16 + len(payload))
    return kind + struct.pack("<IQ", 0, len(payload)) + payload


def _tensor(name, a):
    a = np.asarray(a)
    native = np.dtype(a.dtype).newbyteorder("=")
    if native not in _CODES:
        raise TypeError(f"tensor '{name}': dtype {a.dtype} has no prumux type "
                        "(f32, f16, f64, i8, u8, i16, i32, i64)")
    if a.ndim > MAX_RANK:
        raise ValueError(f"tensor '{name}': rank {a.ndim} exceeds {MAX_RANK}")
    nb = name.encode()
    if not 1 <= len(nb) <= NAME_MAX or any(c <= 0x20 or c == 0x7F for c in nb):
        raise ValueError(f"tensor name {name!r} is empty, too long or has a "
                         "space or control character")
    # astype, not ascontiguousarray, which makes a rank-0 tensor rank 1.
    a = a.astype(native.newbyteorder("<"), order="C", copy=False)
    head_len = 40 + 8 * a.ndim + len(nb)
    off = head_len + _pad(head_len)
    head = struct.pack("<BBHIQQ", _CODES[native], a.ndim, len(nb), 0, off, a.nbytes)
    head += b"".join(struct.pack("<Q", d) for d in a.shape) + nb
    return _frame(b"TENS", head + b"\0" * (off - head_len) + a.tobytes())


class Writer:
    """Write a stream: ``w = Writer(f, meta); w.write(rec); w.close()``.
    F is a binary file object or a path ("-" is standard output); a path is
    written to a temporary file renamed over it by close(), as the prumux
    programs do.  Each record is flushed as written, so a pipeline keeps
    moving.  Arrays of any native-endian prumux dtype are accepted;
    int/float of other widths must be converted first."""

    def __init__(self, f, meta=None):
        self._path = self._tmp = None
        if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__"):
            if f == "-":
                f = sys.stdout.buffer
            else:
                import os
                import tempfile
                self._path = os.fspath(f)
                fd, self._tmp = tempfile.mkstemp(
                    prefix=os.path.basename(self._path) + ".",
                    dir=os.path.dirname(self._path) or ".")
                f = os.fdopen(fd, "wb")
        self._f = f
        self.count = 0
        text = ""
        for k, v in (meta or {}).items():
            v = str(v)
            if not _META_KEY.match(str(k)) or any(c in v for c in "\r\n\0"):
                self._discard()
                raise ValueError(f"metadata {k}={v!r}: bad key or value")
            text += f"{k}={v}\n"
        if len(text.encode()) > META_MAX:
            self._discard()
            raise ValueError("metadata exceeds 1 MiB")
        self._put(MAGIC + struct.pack("<HHI", MAJOR, MINOR, 0x01020304) + b"\0" * 48
                  + _frame(b"META", text.encode()))

    def _put(self, data):
        self._f.write(data)

    def _discard(self):
        if self._tmp:
            import os
            self._f.close()
            os.unlink(self._tmp)
            self._tmp = None

    def write(self, record):
        """Write one record, a dict {name: array} of at most 256 tensors."""
        if len(record) > MAX_TENSORS:
            raise ValueError(f"{len(record)} tensors exceed {MAX_TENSORS} in a record")
        frames = [_frame(b"RECD", struct.pack("<QII", self.count, len(record), 0))]
        frames += [_tensor(k, v) for k, v in record.items()]
        self._put(b"".join(frames))
        self._f.flush()
        self.count += 1

    def close(self):
        """Write the END frame (and, for a path, rename the file into place)."""
        if self._f is None:
            return
        self._put(_frame(b"END ", struct.pack("<Q", self.count)))
        self._f.flush()
        if self._tmp:
            import os
            os.fchmod(self._f.fileno(), 0o666 & ~_umask())
            self._f.close()
            os.replace(self._tmp, self._path)
            self._tmp = None
        self._f = None

    def __enter__(self):
        return self

    def __exit__(self, etype, *exc):
        if etype is None:
            self.close()
        else:
            self._discard()


def _umask():
    import os
    m = os.umask(0)
    os.umask(m)
    return m


def write(f, records, meta=None):
    """Write RECORDS (an iterable of {name: array}) with META as a stream."""
    with Writer(f, meta) as w:
        for rec in records:
            w.write(rec)


def dumps(records, meta=None):
    """The stream of RECORDS and META as bytes."""
    buf = io.BytesIO()
    write(buf, records, meta)
    return buf.getvalue()
