"""The peers aimc races on the CPU: AIM pre-training written the way a PyTorch or
JAX user would write it, with the same math as aimc's compiled step (AIM.md):
antithetic prefix pairs, prefix-causal attention, the normalised-pixel loss on
non-prefix patches, global-norm clipping at 1.0, AdamW (0.9, 0.95, 1e-8, weight
decay 0.05 except biases and LayerNorm), float32.

Usage: peers.py {torch-eager,torch-compile,jax-jit} --threads T --batch B
                --steps S --warmup W
Prints one JSON line: images/s over the S timed steps, and the seconds the
first W (warm-up, compiling) steps took beyond that many steady steps.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np

# The model and its position embedding as the GPU race writes them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu-race"))
import peer  # noqa: E402

# aim-fmnist (aimc --list-presets): 28x28x1, patch 4, D 192, 6 blocks of 6
# heads, MLP ratio 4, head width 192, 2 head blocks.
CFG = dict(image=28, channels=1, patch=4, width=192, depth=6, heads=6, mlp=4,
           head_width=192, head_depth=2, eps=1e-6)
FASHION_MNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def load_images():
    with gzip.open(FASHION_MNIST) as f:
        data = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    images = data.reshape(-1, 1, 28, 28).astype(np.float32)
    return (images / 255.0 - 0.2860) / 0.3530


def batches(images, batch, seed=0):
    """Random batches with antithetic prefix pairs (K, N - K), K ~ U[1, N-1]."""
    rng = np.random.default_rng(seed)
    n = (CFG["image"] // CFG["patch"]) ** 2
    while True:
        x = images[rng.integers(0, len(images), batch)]
        k = rng.integers(1, n, batch // 2)
        prefix = np.stack([k, n - k], axis=1).reshape(-1).astype(np.int64)
        yield x, prefix


def learning_rate(step, total, peak=1e-3):
    warm = round(0.025 * total)
    if step < warm:
        return 1e-6 + (peak - 1e-6) * step / warm
    return peak * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))) / 2


# ----------------------------------------------------------------- PyTorch
def torch_peer(args):
    import torch
    torch.set_num_threads(args.threads)
    # The model as the GPU race writes it (bench/gpu-race/peer.py), on the CPU
    # with SDPA's boolean prefix-causal mask.
    options = argparse.Namespace(attention="sdpa", device="cpu",
                                 compile="whole" if args.peer == "torch-compile" else "none")
    torch.manual_seed(0)
    model, loss_fn = peer.build(options, peer.PRESETS["aim-fmnist"], torch)
    decay = [q for name, q in model.named_parameters() if q.ndim > 1]
    no_decay = [q for name, q in model.named_parameters() if q.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=True)

    def step(s, x, k, total):
        loss = loss_fn(torch.from_numpy(x), torch.from_numpy(k))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = learning_rate(s, total)
        opt.step()
        return float(loss.detach())
    return step


# --------------------------------------------------------------------- JAX
def jax_peer(args):
    import jax
    import jax.numpy as jnp
    c = CFG
    p, D, h = c["patch"], c["width"], c["heads"]
    g = c["image"] // p
    n = g * g
    hw = c["head_width"]
    rng = np.random.default_rng(0)

    def xavier(shape):
        fan_out, fan_in = shape[0], int(np.prod(shape[1:]))
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return jnp.asarray(rng.uniform(-bound, bound, shape).astype(np.float32))

    def ln_params(w):
        return {"w": jnp.ones(w), "b": jnp.zeros(w)}
    params = {"proj_w": xavier((D, p * p * c["channels"])), "proj_b": jnp.zeros(D),
              "patch_norm": ln_params(D), "post_norm": ln_params(D),
              "dec_proj_w": xavier((hw, D)), "dec_proj_b": jnp.zeros(hw),
              "dec_norm": ln_params(hw), "pred_w": xavier((p * p * c["channels"], hw)),
              "pred_b": jnp.zeros(p * p * c["channels"]),
              "blocks": [{"norm_1": ln_params(D), "norm_2": ln_params(D), "qkv": xavier((3 * D, D)),
                          "proj": xavier((D, D)), "fc1": xavier((c["mlp"] * D, D)),
                          "fc2": xavier((D, c["mlp"] * D))} for _ in range(c["depth"])],
              "head": [{"norm": ln_params(hw), "fc1": xavier((c["mlp"] * hw, hw)),
                        "fc2": xavier((hw, c["mlp"] * hw))} for _ in range(c["head_depth"])]}
    pos, head_pos = jnp.asarray(peer.sincos_2d(D, g)), jnp.asarray(peer.sincos_2d(hw, g))

    def ln(x, q):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / jnp.sqrt(v + c["eps"]) * q["w"] + q["b"]

    def gelu(x):
        return jax.nn.gelu(x, approximate=False)

    def loss_fn(P, images, prefix):
        B = images.shape[0]
        patches = images.reshape(B, c["channels"], g, p, g, p).transpose(0, 2, 4, 1, 3, 5).reshape(B, n, -1)
        x = ln(patches @ P["proj_w"].T + P["proj_b"], P["patch_norm"]) + pos
        idx = jnp.arange(n)
        mask = (idx[None, None, :] < prefix[:, None, None]) | (idx[None, None, :] <= idx[None, :, None])
        for blk in P["blocks"]:
            q, k, v = (ln(x, blk["norm_1"]) @ blk["qkv"].T).reshape(B, n, 3, h, D // h).transpose(2, 0, 3, 1, 4)
            s = jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(D // h)
            s = jnp.where(mask[:, None], s, -jnp.inf)
            a = jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(s, axis=-1), v)
            x = x + a.transpose(0, 2, 1, 3).reshape(B, n, D) @ blk["proj"].T
            x = x + gelu(ln(x, blk["norm_2"]) @ blk["fc1"].T) @ blk["fc2"].T
        x = ln(x, P["post_norm"]) @ P["dec_proj_w"].T + P["dec_proj_b"] + head_pos
        for blk in P["head"]:
            x = x + gelu(ln(x, blk["norm"]) @ blk["fc1"].T) @ blk["fc2"].T
        pred = ln(x, P["dec_norm"]) @ P["pred_w"].T + P["pred_b"]
        t = images.reshape(B, c["channels"], g, p, g, p).transpose(0, 2, 4, 3, 5, 1).reshape(B, n, -1)
        t = (t - t.mean(-1, keepdims=True)) / jnp.sqrt(t.var(-1, ddof=1, keepdims=True) + c["eps"])
        err = ((pred[:, :-1] - t[:, 1:]) ** 2).mean(-1)
        counted = (jnp.arange(1, n)[None, :] >= prefix[:, None]).astype(jnp.float32)
        return (err * counted).sum() / counted.sum()

    decay = jax.tree_util.tree_map(lambda q: q.ndim > 1, params)
    state = {"params": params, "m": jax.tree_util.tree_map(jnp.zeros_like, params),
             "v": jax.tree_util.tree_map(jnp.zeros_like, params)}

    def train_step(state, images, prefix, lr, t):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], images, prefix)
        norm = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(grads)))
        coef = jnp.minimum(1.0, 1.0 / (norm + 1e-6))
        b1, b2 = 0.9, 0.95

        def update(q, gr, m, v, d):
            gr = gr * coef
            q = jnp.where(d, q - lr * 0.05 * q, q)
            m = b1 * m + (1 - b1) * gr
            v = b2 * v + (1 - b2) * gr * gr
            q = q - lr * (m / (1 - b1 ** t)) / (jnp.sqrt(v / (1 - b2 ** t)) + 1e-8)
            return q, m, v
        out = jax.tree_util.tree_map(update, state["params"], grads, state["m"], state["v"], decay)
        leaves = lambda i: jax.tree_util.tree_map(lambda o: o[i], out,
                                                  is_leaf=lambda o: isinstance(o, tuple))
        return {"params": leaves(0), "m": leaves(1), "v": leaves(2)}, loss
    train_step = jax.jit(train_step, donate_argnums=0)
    holder = {"state": state}

    def step(s, x, k, total):
        holder["state"], loss = train_step(holder["state"], jnp.asarray(x), jnp.asarray(k, dtype=jnp.int32),
                                           jnp.float32(learning_rate(s, total)), jnp.float32(s + 1))
        return float(loss)
    return step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=["torch-eager", "torch-compile", "jax-jit"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    stream = batches(load_images(), args.batch)
    step = (jax_peer if args.peer == "jax-jit" else torch_peer)(args)
    total = args.warmup + args.steps
    started = time.perf_counter()
    first = []
    for s in range(args.warmup):
        x, k = next(stream)
        first.append(step(s, x, k, total))
    warm = time.perf_counter() - started
    started = time.perf_counter()
    losses = []
    for s in range(args.warmup, total):
        x, k = next(stream)
        losses.append(step(s, x, k, total))
    timed = time.perf_counter() - started
    per_step = timed / args.steps
    print(json.dumps({"peer": args.peer, "threads": args.threads, "batch": args.batch,
                      "images_per_second": args.batch * args.steps / timed,
                      "compile_seconds": max(0.0, warm - args.warmup * per_step),
                      "first_loss": first[0], "last_loss": losses[-1]}))


if __name__ == "__main__":
    sys.exit(main())
