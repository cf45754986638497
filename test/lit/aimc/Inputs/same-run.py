"""Two training runs took the same steps: per-step loss and gradient norm of
their metrics.jsonl, and every tensor of their final model.safetensors, agree
within a relative tolerance (float32 rounding of different summation orders).
usage: same-run.py RUN_A RUN_B RTOL [PARAM_RTOL]
(PARAM_RTOL, default RTOL: the tolerance of the final parameters alone)"""
import json, struct, sys

import numpy as np


def metrics(run):
    rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
    return [(r["step"], r["loss"], r["grad_norm"]) for r in rows if "loss" in r]


def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    return {k: np.frombuffer(body[v["data_offsets"][0]:v["data_offsets"][1]],
                             dtype=np.float32) for k, v in header.items()}


a, b, rtol = sys.argv[1], sys.argv[2], float(sys.argv[3])
param_rtol = float(sys.argv[4]) if len(sys.argv) > 4 else rtol
ma, mb = metrics(a), metrics(b)
assert len(ma) == len(mb) and ma, (len(ma), len(mb))
for (s, la, na), (_, lb, nb) in zip(ma, mb):
    assert abs(la - lb) <= rtol * abs(lb), f"step {s}: loss {la} vs {lb}"
    assert abs(na - nb) <= rtol * abs(nb), f"step {s}: grad norm {na} vs {nb}"
ta, tb = tensors(a + "/model.safetensors"), tensors(b + "/model.safetensors")
assert ta.keys() == tb.keys()
worst = max(float(np.max(np.abs(ta[k] - tb[k])) / max(np.max(np.abs(tb[k])), 1e-30))
            for k in ta)
assert worst <= param_rtol, f"parameters differ by {worst:.2e} of their largest entry"
print(f"same run: {len(ma)} steps, losses and norms within {rtol:g}, "
      f"parameters within {worst:.1e} of each tensor's largest entry")
