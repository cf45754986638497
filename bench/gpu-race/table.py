"""The race table (issue 8): aimc's step (from `aim-run bench` output) beside the
PyTorch peers' JSON lines (peer.py), as images/s, MFU and ratios.

Usage: table.py MODEL BATCH PEERS_JSONL AIMC_BENCH_TXT...
(each aim-run bench output: its header names the GEMM precision, if not fp32, and
the batch; BATCH where it does not)
MFU as DESIGN.md defines it: 3 x the full model's forward FLOPs per image (AIM.md's
count) x images/s / 989e12 (H100 SXM dense bf16), whatever precision ran.
"""
import json
import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from peer import H100_BF16_DENSE, PRESETS, forward_flops_per_image  # noqa: E402


def main():
    model, batch, peers_jsonl, benches = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    flops = forward_flops_per_image(PRESETS[model])
    rows = []
    for bench_txt in benches:
        try:
            text = open(bench_txt).read()
        except OSError:
            continue
        m = re.search(r"^step ([0-9.]+) ms, ([0-9.]+) images/s", text, re.M)
        gemm = re.search(r", (\w+) GEMMs[,)]", text)
        bf16_operands = ", bf16 GEMM operands)" in text
        # The batch the artifact was compiled for, and its file name (its
        # variant: -b16, -no-prefix), from the bench header.
        own_batch = re.search(r": batch (\d+),", text)
        artifact = re.search(r"^bench (\S+?)(\.aimx)? on ", text, re.M)
        name = "aimc " + artifact.group(1).rsplit("/", 1)[-1] if artifact else "aimc"
        if m:
            precision = f"fp32, {gemm.group(1)} GEMMs" if gemm else "fp32"
            if bf16_operands:
                precision = "bf16 GEMM operands"
            rows.append((name, precision,
                         int(own_batch.group(1)) if own_batch else batch,
                         float(m.group(2))))
    try:
        for line in open(peers_jsonl):
            if line.startswith("{"):
                r = json.loads(line)
                rows.append((r["peer"], r["precision"], r["batch"], r["images_per_second"]))
    except OSError:
        pass
    same = {(p, b): ips for name, p, b, ips in rows if not name.startswith("aimc")}
    print(f"{'contestant':<30} {'precision':<20} {'batch':>5} {'images/s':>10} {'MFU':>7} "
          f"{'best aimc/this':>14}")
    aimc = max((ips for name, _, _, ips in rows if name.startswith("aimc")), default=None)
    for name, precision, b, ips in rows:
        mfu = 3 * flops * ips / H100_BF16_DENSE
        ratio = f"{aimc / ips:14.4f}" if aimc and not name.startswith("aimc") else f"{'':>14}"
        print(f"{name:<30} {precision:<20} {b:>5} {ips:>10.2f} {100 * mfu:>6.2f}% {ratio}")
    if not same:
        print("(no peer finished)")


if __name__ == "__main__":
    main()
