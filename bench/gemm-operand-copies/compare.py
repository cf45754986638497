"""Two `aim-run bench --per-kernel --csv` tables side by side by kernel family
(the kernel's name without numbers and without "fused_", so that the same
op's kernels match across two fusions): launches and roofline ms a step, and
the totals of the kernels aimc generates (cuBLASLt calls apart: the roofline
prices them at CUDA-core speed, meaningless for tensor cores).

Usage: compare.py NAME_A CSV_A NAME_B CSV_B [ROWS]
"""
import collections
import csv
import re
import sys


def family(kernel):
    if kernel.startswith("cublasLt"):
        return "cuBLASLt"
    return re.sub(r"^fused_", "", re.sub(r"_(kernel|\d+)", "", kernel))


def totals(path):
    t = collections.defaultdict(lambda: [0.0, 0.0])
    with open(path) as f:
        for r in csv.DictReader(f):
            x = t[family(r["kernel"])]
            x[0] += float(r["launches_per_step"])
            x[1] += float(r["roofline_us_per_step"]) / 1e3
    return t


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    name_a, a, name_b, b = sys.argv[1], totals(sys.argv[2]), sys.argv[3], totals(sys.argv[4])
    rows = int(sys.argv[5]) if len(sys.argv) == 6 else 20
    generated = lambda t: {k: v for k, v in t.items() if not k.startswith("cuBLASLt")}
    ga, gb = generated(a), generated(b)
    print(f"{'family':<28} {name_a + ' launches':>20} {'roofline ms':>12} "
          f"{name_b + ' launches':>20} {'roofline ms':>12}")
    for f in sorted(set(ga) | set(gb), key=lambda f: -max(ga.get(f, [0, 0])[1], gb.get(f, [0, 0])[1]))[:rows]:
        xa, xb = ga.get(f, [0, 0]), gb.get(f, [0, 0])
        print(f"{f:<28} {xa[0]:>20.0f} {xa[1]:>12.3f} {xb[0]:>20.0f} {xb[1]:>12.3f}")
    sa = [sum(v[i] for v in ga.values()) for i in (0, 1)]
    sb = [sum(v[i] for v in gb.values()) for i in (0, 1)]
    print(f"{'generated kernels':<28} {sa[0]:>20.0f} {sa[1]:>12.3f} {sb[0]:>20.0f} {sb[1]:>12.3f}")
    print(f"{name_b} / {name_a}: launches {sb[0] / sa[0]:.3f}, roofline {sb[1] / sa[1]:.3f}")


if __name__ == "__main__":
    main()
