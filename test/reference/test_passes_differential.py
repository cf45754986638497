"""Differential test of aimc's optimisation passes with the reference interpreter.

Usage: test_passes_differential.py BIN_DIR WORK_DIR

For random small configs, random float64 parameters and random prefix lengths
(always including K = 1 and K = N-1, and K = N in iid mode), the loss and every
gradient of the step compiled without aim-prefix-mask must equal those of the
step compiled with it, and with it and aim-fuse (--emit=kernels: the
interpreter runs the aim.fusion regions), in both sampling modes, with the
interpreter's tiled attention (random tile sizes, following the recorded tile
rule) on for the optimised programs. Tolerance 1e-12 relative per tensor: the two programs add
the same numbers in nearly the same order, so they agree to a few ulps; a
wrong live row or tile class changes results at the 1e-3 level or more.
"""
import json
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aim_torch  # noqa: E402
from harness import loss_of, random_params, run  # noqa: E402

TOLERANCE = 1e-12


def random_config(rng):
    p = rng.choice([2, 4])
    gh, gw = rng.randint(1, 3), rng.randint(2, 4)
    heads = rng.choice([1, 2, 4])
    width = heads * rng.choice([4, 8])
    return {"image_size": [gh * p, gw * p], "channels": rng.choice([1, 3]), "patch_size": p,
            "width": width, "depth": rng.randint(1, 2), "heads": heads, "mlp_ratio": 2,
            "head_width": rng.choice([8, 12]), "head_depth": rng.randint(1, 2)}


def prefix_lengths(rng, mode, batch, n):
    if mode == "antithetic":
        firsts = [1] + [rng.randint(1, n - 1) for _ in range(batch // 2 - 1)]
        return [k for first in firsts for k in (first, n - first)]  # includes 1 and N-1
    return [1, n - 1, n] + [rng.randint(1, n) for _ in range(batch - 3)]


def main():
    bin_dir, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    aimc, interp = os.path.join(bin_dir, "aimc"), os.path.join(bin_dir, "aim-interp")
    rng = random.Random(2024)
    worst, cases = 0.0, 0
    for case in range(4):
        cfg = random_config(rng)
        n = (cfg["image_size"][0] // cfg["patch_size"]) * (cfg["image_size"][1] // cfg["patch_size"])
        cfg_path = os.path.join(work, f"config-{case}.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        init = os.path.join(work, f"init-{case}.safetensors")
        run(interp, "--model", cfg_path, "--init-params", init, "--seed", str(case))
        np_rng = np.random.default_rng(case)
        params = random_params(init, np_rng, 0.4)
        params_path = os.path.join(work, f"params-{case}.safetensors")
        aim_torch.write_safetensors(params_path, params)
        batch = 6
        images = np_rng.normal(size=(batch, cfg["channels"], *cfg["image_size"])).astype(np.float32)
        np.save(os.path.join(work, f"x-{case}.npy"), images)
        for mode in ("antithetic", "iid"):
            k = prefix_lengths(rng, mode, batch, n)
            k_path = os.path.join(work, f"k-{case}-{mode}.npy")
            np.save(k_path, np.array(k, dtype=np.int32))
            data = ["--params", params_path, "--images", os.path.join(work, f"x-{case}.npy"), "--prefix", k_path]
            outputs = {}
            tiles = ["--attention-tiles", f"{rng.randint(1, n)}x{rng.randint(1, n)}"]
            for name, flags, tile_flags in (
                    ("reference", ["--emit=grads", "--no-prefix-mask"], []),
                    ("optimised", ["--emit=grads", f"--prefix-mode={mode}"], tiles),
                    ("fused", ["--emit=kernels", f"--prefix-mode={mode}"], tiles)):
                ir = os.path.join(work, f"{name}-{case}-{mode}.mlir")
                run(aimc, "--model", cfg_path, "--batch", str(batch), *flags, "-o", ir)
                if name == "fused" and "aim.fusion" not in open(ir).read():
                    sys.exit(f"FAILED: --emit=kernels made no aim.fusion for case {case}")
                grads = os.path.join(work, f"grads-{name}-{case}-{mode}.safetensors")
                out = run(interp, "--ir", ir, *data, "--grads", grads, *tile_flags)
                loss = loss_of(out)
                outputs[name] = (loss, aim_torch.read_safetensors(grads), out)
            ref_loss, ref_grads, _ = outputs["reference"]
            for variant in ("optimised", "fused"):
                opt_loss, opt_grads, opt_out = outputs[variant]
                errors = [abs(opt_loss - ref_loss) / abs(ref_loss)]
                for name, g in ref_grads.items():
                    scale = max(float(np.max(np.abs(g))), 1e-300)
                    errors.append(float(np.max(np.abs(opt_grads[name] - g))) / scale)
                case_worst = max(errors)
                worst = max(worst, case_worst)
                cases += 1
                tile_line = next(l for l in opt_out.splitlines() if l.startswith("attention tiles"))
                print(f"case {case} {mode:10} {variant:9} N={n:2} K={k}: worst relative error "
                      f"{case_worst:.1e}; {tile_line}")
                if case_worst > TOLERANCE:
                    sys.exit(f"FAILED: case {case} {mode} {variant}: {case_worst:.3e} > {TOLERANCE}")
    print(f"{cases} cases, worst relative error {worst:.2e} (tolerance {TOLERANCE:g})")


if __name__ == "__main__":
    main()
