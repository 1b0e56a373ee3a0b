"""pmxstream.py -- read and write prumux tensor streams from Python (tests).

A second, independent implementation of prumux-stream(5), used by the
reference tests to hand tensors to the C programs and read their results.
Works with numpy alone (no torch needed).

    write(path_or_file, records, meta={})   records: list of {name: ndarray}
    meta, records = read(path_or_file)
"""
import struct
import numpy as np

MAGIC = b"\x89PMX\r\n\x1a\n"
DTYPES = {1: np.float32, 2: np.float16, 4: np.float64, 5: np.int8, 6: np.uint8,
          7: np.int16, 8: np.int32, 9: np.int64}          # 3 = bf16: raw uint16
CODES = {np.dtype(v): k for k, v in DTYPES.items()}


def _pad(n):
    return (-n) % 64


def _frame(kind, payload):
    payload += b"\0" * _pad(16 + len(payload))
    return kind + struct.pack("<IQ", 0, len(payload)) + payload


def _tensor(name, a):
    a = np.ascontiguousarray(a)
    code = CODES[a.dtype]
    nb = name.encode()
    head = struct.pack("<BBHIQQ", code, a.ndim, len(nb), 0, 0, a.nbytes)
    head += b"".join(struct.pack("<Q", d) for d in a.shape) + nb
    data_off = 16 + len(head) + _pad(16 + len(head))
    head = head[:8] + struct.pack("<Q", data_off) + head[16:]
    body = head + b"\0" * (data_off - 16 - len(head)) + a.tobytes()
    return _frame(b"TENS", body)


def dumps(records, meta=None):
    out = [MAGIC + struct.pack("<HHI", 1, 0, 0x01020304) + b"\0" * 48]
    text = "".join(f"{k}={v}\n" for k, v in (meta or {}).items()).encode()
    out.append(_frame(b"META", text))
    for i, rec in enumerate(records):
        out.append(_frame(b"RECD", struct.pack("<QII", i, len(rec), 0)))
        out.extend(_tensor(k, v) for k, v in rec.items())
    out.append(_frame(b"END ", struct.pack("<Q", len(records))))
    return b"".join(out)


def write(f, records, meta=None):
    data = dumps(records, meta)
    if hasattr(f, "write"):
        f.write(data)
    else:
        with open(f, "wb") as fh:
            fh.write(data)


def loads(buf):
    assert buf[:8] == MAGIC, "bad magic"
    pos = 64
    meta, records, cur, want = {}, [], None, 0
    while True:
        kind, _flags, ln = struct.unpack_from("<4sIQ", buf, pos)
        body = buf[pos + 16:pos + 16 + ln]
        if kind == b"META":
            for line in body.rstrip(b"\0").decode().splitlines():
                k, _, v = line.partition("=")
                meta[k] = v
        elif kind == b"RECD":
            cur, want = {}, struct.unpack_from("<QI", body)[1]
            records.append(cur)
        elif kind == b"TENS":
            code, rank, nlen, _r, off, nbytes = struct.unpack_from("<BBHIQQ", body)
            shape = struct.unpack_from(f"<{rank}Q", body, 24)
            name = body[24 + 8 * rank:24 + 8 * rank + nlen].decode()
            dt = DTYPES.get(code, np.uint16)
            cur[name] = np.frombuffer(body, dt, count=nbytes // np.dtype(dt).itemsize,
                                      offset=off - 16).reshape(shape)
        elif kind == b"END ":
            return meta, records
        pos += 16 + ln


def read(f):
    if hasattr(f, "read"):
        return loads(f.read())
    with open(f, "rb") as fh:
        return loads(fh.read())
