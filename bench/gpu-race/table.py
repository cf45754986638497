"""The race table (issue 8): aimc's step (from `aim-run bench` output) beside the
PyTorch peers' JSON lines (peer.py), as images/s, MFU and ratios.

Usage: table.py AIMC_BENCH_TXT MODEL BATCH PEERS_JSONL
MFU as DESIGN.md defines it: 3 x the full model's forward FLOPs per image (AIM.md's
count) x images/s / 989e12 (H100 SXM dense bf16), whatever precision ran.
"""
import json
import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from peer import H100_BF16_DENSE, PRESETS, forward_flops_per_image  # noqa: E402


def main():
    bench_txt, model, batch, peers_jsonl = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    flops = forward_flops_per_image(PRESETS[model])
    rows = []
    try:
        m = re.search(r"^step ([0-9.]+) ms, ([0-9.]+) images/s", open(bench_txt).read(), re.M)
    except OSError:
        m = None
    if m:
        rows.append(("aimc", "fp32", batch, float(m.group(2))))
    try:
        for line in open(peers_jsonl):
            if line.startswith("{"):
                r = json.loads(line)
                rows.append((r["peer"], r["precision"], r["batch"], r["images_per_second"]))
    except OSError:
        pass
    same = {(p, b): ips for name, p, b, ips in rows if name != "aimc"}
    print(f"{'contestant':<22} {'precision':<9} {'batch':>5} {'images/s':>10} {'MFU':>7} "
          f"{'aimc/this':>9}")
    aimc = next((ips for name, _, _, ips in rows if name == "aimc"), None)
    for name, precision, b, ips in rows:
        mfu = 3 * flops * ips / H100_BF16_DENSE
        ratio = f"{aimc / ips:9.3f}" if aimc and name != "aimc" else f"{'':>9}"
        print(f"{name:<22} {precision:<9} {b:>5} {ips:>10.2f} {100 * mfu:>6.2f}% {ratio}")
    if not same:
        print("(no peer finished)")


if __name__ == "__main__":
    main()
