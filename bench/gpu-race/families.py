"""Where a step's device time goes, by kernel family: `aim-run bench --per-kernel
--csv` rows summed by the artifact's kernel name without its numeric suffixes
(layer_norm_grad_51_kernel_126 -> layer_norm_grad_51), cuBLASLt calls as linear
layers (plain GEMMs) and attention (strided batches, "B x MxNxK").

Usage: families.py KERNELS_CSV [ROWS]
"""
import collections
import csv
import re
import sys


def family(kernel):
    if kernel.startswith("cublasLt"):
        return "cuBLASLt attention (batched)" if " x " in kernel else "cuBLASLt linear layers"
    return re.sub(r"(_kernel)?(_\d+)*$", "", kernel)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    rows = int(sys.argv[2]) if len(sys.argv) == 3 else 15
    totals = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
    with open(sys.argv[1]) as f:
        for r in csv.DictReader(f):
            t = totals[family(r["kernel"])]
            t[0] += float(r["launches_per_step"])
            t[1] += float(r["us_per_step"])
            t[2] += float(r["roofline_us_per_step"])
    step = sum(t[1] for t in totals.values())
    print(f"{'family':<32} {'launches':>9} {'ms/step':>9} {'share':>7} {'roofline ms':>12}")
    for name, (launches, us, roofline) in sorted(totals.items(), key=lambda x: -x[1][1])[:rows]:
        print(f"{name:<32} {launches:>9.0f} {us / 1e3:>9.2f} {100 * us / step:>6.1f}% "
              f"{roofline / 1e3:>12.2f}")
    print(f"{'all':<32} {sum(t[0] for t in totals.values()):>9.0f} {step / 1e3:>9.2f}")


if __name__ == "__main__":
    main()
