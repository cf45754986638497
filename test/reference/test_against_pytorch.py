"""The whole AIM loss of aim-interp against an independent PyTorch model.

Usage: test_against_pytorch.py BIN_DIR WORK_DIR

Small non-square config (8x12 images, 3 channels, patch 4: a 2x3 grid, N = 6),
random parameters (LayerNorm affines and biases included, so every parameter
matters), a batch mixing K = 1, K = N-1 and K = N with random K.

Tolerances: float64 against float64 at 1e-10 relative (different summation
orders agree to about 1e-15; a wrong formula is off by far more). The float32
interpreter against the float64 one at 1e-4 relative (float32 carries 7 digits;
a few hundred accumulations lose at most two or three of them).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aim_torch  # noqa: E402
from harness import loss_of, random_params, run  # noqa: E402

CONFIG = """\
name: reference-small
image_size: [8, 12]
channels: 3
patch_size: 4
width: 32
depth: 2
heads: 4
mlp_ratio: 4
head_width: 24
head_depth: 2
"""
CFG = dict(patch_size=4, width=32, heads=4, depth=2, head_width=24, head_depth=2)
N = 6


def main():
    bin_dir, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    interp, aimc = os.path.join(bin_dir, "aim-interp"), os.path.join(bin_dir, "aimc")
    cfg_path = os.path.join(work, "small.yaml")
    with open(cfg_path, "w") as f:
        f.write(CONFIG)

    # Parameter names and shapes come from aimc; values are random so that
    # LayerNorm weights and all biases are exercised, not only Xavier weights.
    init_path = os.path.join(work, "init.safetensors")
    run(interp, "--model", cfg_path, "--init-params", init_path, "--seed", "7")
    rng = np.random.default_rng(1234)
    params = random_params(init_path, rng, 0.3)
    params_path = os.path.join(work, "params.safetensors")
    aim_torch.write_safetensors(params_path, params)

    images = rng.normal(0.0, 1.0, size=(8, 3, 8, 12)).astype(np.float32)
    prefix = np.array([1, N - 1, N, 3, 2, N, 1, 4], dtype=np.int64)
    np.save(os.path.join(work, "x.npy"), images)
    np.save(os.path.join(work, "k.npy"), prefix)
    data = ["--params", params_path, "--images", os.path.join(work, "x.npy"),
            "--prefix", os.path.join(work, "k.npy")]

    reference = float(aim_torch.aim_loss(CFG, params, images, prefix))
    ours = loss_of(run(interp, "--model", cfg_path, *data))
    ours_f32 = loss_of(run(interp, "--model", cfg_path, *data, "--f32"))
    mlir_path = os.path.join(work, "forward.mlir")
    run(aimc, "--model", cfg_path, "--batch", "8", "--emit=aim", "-o", mlir_path)
    ours_ir = loss_of(run(interp, "--ir", mlir_path, "--entry", "forward", *data))

    # int32 prefix lengths give the same loss.
    np.save(os.path.join(work, "k32.npy"), prefix.astype(np.int32))
    data32 = data[:-1] + [os.path.join(work, "k32.npy")]
    ours_i32 = loss_of(run(interp, "--model", cfg_path, *data32))

    failures = []

    def check(name, value, expected, rtol):
        rel = abs(value - expected) / abs(expected)
        status = "ok" if rel <= rtol else "FAIL"
        print(f"{status:4} {name:38} {value:.17g} vs {expected:.17g} (rel {rel:.2e}, tol {rtol:g})")
        if rel > rtol:
            failures.append(name)

    check("aim-interp f64 vs PyTorch f64", ours, reference, 1e-10)
    check("aim-interp --ir f64 vs PyTorch f64", ours_ir, reference, 1e-10)
    check("int32 prefix vs int64 prefix", ours_i32, ours, 0.0)
    check("aim-interp f32 vs aim-interp f64", ours_f32, ours, 1e-4)
    # The check has teeth: another prefix vector changes the loss.
    other = float(aim_torch.aim_loss(CFG, params, images, np.array([2, N - 1, N, 3, 2, N, 1, 4])))
    if abs(other - reference) / abs(reference) < 1e-6:
        failures.append("the loss does not depend on the prefix lengths")
    if failures:
        sys.exit("FAILED: " + ", ".join(failures))


if __name__ == "__main__":
    main()
