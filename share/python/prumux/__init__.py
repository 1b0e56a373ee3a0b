"""prumux -- read and write prumux tensor streams and read model archives
from Python, with numpy (pure Python; pandas is optional).

    import prumux
    meta, records = prumux.read("logits.pmxs")       # or "-" for stdin
    for rec in prumux.records("big.pmxs"): ...        # one record at a time
    prumux.write("out.pmxs", records, {"stage": "tokens"})
    df = prumux.dataframe(records)                    # needs pandas
    model = prumux.open_model("model.pmx")
    model.config["layers"], model.vocab[101], model["classifier.weight"]

prumux-python(7) documents the module; prumux-stream(5) and
prumux-model(5) the formats.
"""

from .stream import (FormatError, Reader, Writer, read, write, loads, dumps,  # noqa: F401
                     records, dtype_name)
from .model import Model, open_model  # noqa: F401

__version__ = "0.1.0"


def columns(recs):
    """The per-row tensors of RECS concatenated over the records, as an
    ordered dict {column: 1-D array}.  A tensor is per-row when its first
    dimension is the record's row count (that of 'row' if the record has
    one, else of its first tensor); a (B, K) tensor gives columns NAME_0 ..
    NAME_K-1, a higher-rank one a column of (sub)arrays.  Others (such as
    'positions') are left out."""
    import numpy as np
    cols, order = {}, []
    for rec in recs:
        if not rec:
            continue
        first = rec["row"] if "row" in rec else next(iter(rec.values()))
        n = first.shape[0] if first.ndim else 1
        for name, a in rec.items():
            if a.ndim == 0 or a.shape[0] != n:
                continue
            if a.ndim == 1:
                parts = {name: a}
            elif a.ndim == 2:
                parts = {f"{name}_{k}": a[:, k] for k in range(a.shape[1])}
            else:
                obj = np.empty(n, dtype=object)
                for i in range(n):
                    obj[i] = a[i]
                parts = {name: obj}
            for k, v in parts.items():
                if k not in cols:
                    cols[k] = []
                    order.append(k)
                cols[k].append(v)
    return {k: np.concatenate(cols[k]) for k in order}


def dataframe(recs):
    """columns(RECS) as a pandas DataFrame, indexed by 'row' when present."""
    import pandas as pd
    df = pd.DataFrame(columns(recs))
    if "row" in df:
        df = df.set_index("row")
    return df
