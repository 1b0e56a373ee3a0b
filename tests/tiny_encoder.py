"""tiny_encoder.py -- random weights of a one-layer encoder (hidden 8, two
heads of 4, FFN 16) as a --weights record, for the shell tests of
prumux-infer (infer-errors.sh, cuda-host.sh)."""
import numpy as np

META = {"id": "feedface", "hidden": 8, "layers": 1, "head_dim": 4}
PREFIX = "encoder.layer.0."


def weights(rng):
    """The layer's tensors by name, drawn from the numpy Generator RNG."""
    def f(*s):
        return rng.standard_normal(s).astype(np.float32)
    p = PREFIX
    return {p + "attention.self.query.weight": f(8, 8), p + "attention.self.query.bias": f(8),
            p + "attention.self.key.weight": f(8, 8), p + "attention.self.key.bias": f(8),
            p + "attention.self.value.weight": f(8, 8), p + "attention.self.value.bias": f(8),
            p + "attention.output.dense.weight": f(8, 8), p + "attention.output.dense.bias": f(8),
            p + "attention.output.LayerNorm.weight": f(8),
            p + "attention.output.LayerNorm.bias": f(8),
            p + "intermediate.dense.weight": f(16, 8), p + "intermediate.dense.bias": f(16),
            p + "output.dense.weight": f(8, 16), p + "output.dense.bias": f(8),
            p + "output.LayerNorm.weight": f(8), p + "output.LayerNorm.bias": f(8)}
