"""What the reference tests share: running aimc's tools and making parameters."""
import subprocess
import sys

import aim_torch


def run(*args):
    """Runs a tool; a failure ends the test with the tool's output."""
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(args)}\n{result.stdout}{result.stderr}")
    return result.stdout


def loss_of(output):
    """The value of the `loss <value>` line of aim-interp's output."""
    for line in output.splitlines():
        if line.startswith("loss "):
            return float(line.split()[1])
    sys.exit(f"no 'loss' line in:\n{output}")


def random_params(init_path, rng, scale):
    """float64 parameters with the names and shapes of an --init-params file:
    normal(0, scale), plus 1 for LayerNorm weights, so that every parameter
    (norm affines and biases included) matters."""
    params = {}
    for name, init in aim_torch.read_safetensors(init_path).items():
        is_norm_weight = "norm" in name.split(".")[-2] and name.endswith(".weight")
        params[name] = rng.normal(0.0, scale, size=init.shape) + (1.0 if is_norm_weight else 0.0)
    return params
