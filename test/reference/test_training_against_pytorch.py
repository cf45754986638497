"""Gradients and AdamW steps of aimc against PyTorch autograd and torch.optim.

Usage: test_training_against_pytorch.py BIN_DIR WORK_DIR

The small non-square config of test_against_pytorch.py, random float64
parameters, a batch mixing K = 1, N-1 and N. Three checks, all in float64:

1. aim-interp --grads (which runs @loss_and_grads built by aim-autodiff) against
   PyTorch autograd of the independent model in aim_torch.py, for every
   parameter tensor: max|ours - torch| <= 1e-9 * max|torch|.
2. Central finite differences of the loss (aim-interp --params, h = 1e-5)
   against aim-interp's gradient for a sample of elements of every kind of
   parameter: |fd - grad| <= 1e-7 + 1e-6 |fd| (truncation about h^2 = 1e-10,
   rounding about 1e-16 / h = 1e-11).
3. Five @train_step steps (aim-interp --train-steps 5 --dump-steps) against
   torch.optim.AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.05 on weights
   only) after torch.nn.utils.clip_grad_norm_(max_norm=1): parameters,
   exp_avg and exp_avg_sq after each step to 1e-9 relative per tensor. The
   first step's gradient norm must exceed 1, so clipping is exercised.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aim_torch  # noqa: E402
from harness import loss_of, random_params, run  # noqa: E402
from test_against_pytorch import CFG, CONFIG, N  # noqa: E402

LR = 1e-3
STEPS = 5


failures = []


def check(name, ours, reference, rtol):
    scale = float(np.max(np.abs(reference)))
    err = float(np.max(np.abs(np.asarray(ours) - np.asarray(reference))))
    if err > rtol * max(scale, 1e-300):
        failures.append(f"{name}: max error {err:.3e} vs scale {scale:.3e} (tol {rtol:g} relative)")
    return err / max(scale, 1e-300)


def torch_params(params):
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}


def main():
    bin_dir, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    interp = os.path.join(bin_dir, "aim-interp")
    cfg_path = os.path.join(work, "small.yaml")
    with open(cfg_path, "w") as f:
        f.write(CONFIG)
    init_path = os.path.join(work, "init.safetensors")
    run(interp, "--model", cfg_path, "--init-params", init_path, "--seed", "11")
    rng = np.random.default_rng(99)
    params = random_params(init_path, rng, 0.3)
    params_path = os.path.join(work, "params.safetensors")
    aim_torch.write_safetensors(params_path, params)
    images = rng.normal(0.0, 1.0, size=(6, 3, 8, 12)).astype(np.float32)
    prefix = np.array([1, N - 1, N, 2, 4, 1], dtype=np.int64)
    np.save(os.path.join(work, "x.npy"), images)
    np.save(os.path.join(work, "k.npy"), prefix)
    data = ["--images", os.path.join(work, "x.npy"), "--prefix", os.path.join(work, "k.npy")]

    # 1. Gradients against autograd.
    grads_path = os.path.join(work, "grads.safetensors")
    run(interp, "--model", cfg_path, "--params", params_path, *data, "--grads", grads_path)
    ours = aim_torch.read_safetensors(grads_path)
    tp = torch_params(params)
    aim_torch.aim_loss(CFG, tp, images, prefix).backward()
    worst = 0.0
    assert list(ours) == list(params), "gradient names or order differ from the parameters"
    for name, p in tp.items():
        assert ours[name].dtype == np.float64, f"{name}: gradients are not float64"
        worst = max(worst, check(f"grad {name}", ours[name], p.grad.numpy(), 1e-9))
    print(f"gradients vs autograd: {len(ours)} tensors, worst relative error {worst:.2e} (tol 1e-9)")

    # 2. Finite differences for a sample of every kind of parameter.
    kinds = {}
    for name in params:
        kind = ".".join(part for part in name.split(".") if not part.isdigit())
        kinds.setdefault(kind, name)
    h, sample_rng, checked, worst_fd = 1e-5, np.random.default_rng(5), 0, 0.0
    fd_path = os.path.join(work, "fd.safetensors")
    for kind, name in kinds.items():
        for index in sample_rng.choice(params[name].size, size=2, replace=False):
            values = []
            for sign in (+1, -1):
                shifted = dict(params)
                flat = params[name].copy().reshape(-1)
                flat[index] += sign * h
                shifted[name] = flat.reshape(params[name].shape)
                aim_torch.write_safetensors(fd_path, shifted)
                values.append(loss_of(run(interp, "--model", cfg_path, "--params", fd_path, *data)))
            fd = (values[0] - values[1]) / (2 * h)
            g = ours[name].reshape(-1)[index]
            worst_fd = max(worst_fd, abs(fd - g))
            if abs(fd - g) > 1e-7 + 1e-6 * abs(fd):
                failures.append(f"finite difference {name}[{index}]: {fd:.12g} vs {g:.12g}")
            checked += 1
    print(f"finite differences: {checked} elements of {len(kinds)} parameter kinds, "
          f"worst |fd - grad| {worst_fd:.2e} (tol 1e-7 + 1e-6 |fd|)")

    # 3. Five AdamW steps with clipping.
    steps_dir = os.path.join(work, "steps")
    os.makedirs(steps_dir, exist_ok=True)
    out = run(interp, "--model", cfg_path, "--params", params_path, *data,
              "--train-steps", str(STEPS), "--lr", str(LR), "--dump-steps", steps_dir)
    step_lines = [l.split() for l in out.splitlines() if l.startswith("step ")]
    first_norm = float(step_lines[0][5])
    if first_norm <= 1.0:
        failures.append(f"the first gradient norm {first_norm} does not exceed 1: clipping is not exercised")
    tp = torch_params(params)
    decay = [p for p in tp.values() if p.ndim >= 2]
    no_decay = [p for p in tp.values() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    worst_step = 0.0
    for step in range(STEPS):
        opt.zero_grad()
        loss = aim_torch.aim_loss(CFG, tp, images, prefix)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(list(tp.values()), max_norm=1.0))
        opt.step()
        ours_loss, ours_norm = float(step_lines[step][3]), float(step_lines[step][5])
        check(f"step {step} loss", [ours_loss], [float(loss)], 1e-9)
        check(f"step {step} grad norm", [ours_norm], [norm], 1e-9)
        dumped = aim_torch.read_safetensors(os.path.join(steps_dir, f"step-{step + 1}.safetensors"))
        for name, p in tp.items():
            state = opt.state[p]
            worst_step = max(worst_step,
                             check(f"step {step + 1} {name}", dumped[name], p.detach().numpy(), 1e-9),
                             check(f"step {step + 1} {name}.exp_avg", dumped[name + ".exp_avg"],
                                   state["exp_avg"].numpy(), 1e-9),
                             check(f"step {step + 1} {name}.exp_avg_sq", dumped[name + ".exp_avg_sq"],
                                   state["exp_avg_sq"].numpy(), 1e-9))
    print(f"{STEPS} AdamW steps (first grad norm {first_norm:.3g}, clipped): "
          f"worst relative error {worst_step:.2e} (tol 1e-9)")

    if failures:
        print("\n".join(failures[:30]))
        sys.exit(f"FAILED: {len(failures)} checks")


if __name__ == "__main__":
    main()
