"""The GPU peer aimc races (issue 8): one AIM pre-training step written the way a
PyTorch user would write it today, with the same math as aimc's compiled step
(AIM.md): antithetic prefix pairs, prefix-causal attention (FlexAttention with a
block mask, or SDPA with a boolean mask), the normalised-pixel loss on non-prefix
patches, global-norm clipping at 1.0, fused AdamW (0.9, 0.95, 1e-8, weight decay
0.05 except biases and LayerNorm), fp32 master weights, bf16 autocast or float32.

Usage: peer.py --model aim-600m --batch B [--precision bf16|fp32]
               [--attention flex|sdpa] [--compile none|blocks|whole]
               [--steps S] [--warmup W] [--device cuda|cpu]
Prints one JSON line: images/s over S timed steps, MFU as DESIGN.md defines it
(3 x the full model's forward FLOPs per image x images/s / 989e12), peak memory.

--compile blocks compiles each block (identical blocks share one compilation:
PyTorch's "regional compilation", what users do for deep models to keep compile
time flat); whole compiles the full forward.
"""
import argparse
import json
import math
import sys
import time

PRESETS = {
    # image, channels, patch, width, depth, heads, head_width, head_depth
    "aim-600m": dict(image=224, channels=3, patch=14, width=1536, depth=24, heads=12,
                     head_width=2048, head_depth=12),
    "aim-fmnist": dict(image=28, channels=1, patch=4, width=192, depth=6, heads=6,
                       head_width=192, head_depth=2),
    # For testing this script on a CPU in seconds.
    "tiny": dict(image=16, channels=3, patch=4, width=64, depth=2, heads=2,
                 head_width=64, head_depth=1),
}
MLP, EPS = 4, 1e-6
H100_BF16_DENSE = 989e12


def forward_flops_per_image(c):
    """AIM.md's count: every head row, dense attention, matrix products only."""
    n = (c["image"] // c["patch"]) ** 2
    D, Dh, P = c["width"], c["head_width"], c["patch"] ** 2 * c["channels"]
    trunk = c["depth"] * (2 * 12 * D * D * n + 4 * n * n * D)
    head = c["head_depth"] * 2 * 2 * MLP * Dh * Dh * n
    return 2 * n * P * D + trunk + 2 * n * D * Dh + head + 2 * n * Dh * P


def sincos_2d(width, g):
    import numpy as np
    def one_d(w, pos):
        omega = 1.0 / 10000 ** (np.arange(w // 2, dtype=np.float64) / (w / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    grid = np.meshgrid(np.arange(g), np.arange(g))
    return np.concatenate([one_d(width // 2, grid[0]), one_d(width // 2, grid[1])],
                          axis=1).astype(np.float32)


def build(args, c, torch):
    import torch.nn as nn
    import torch.nn.functional as F
    p, D, h = c["patch"], c["width"], c["heads"]
    g = c["image"] // p
    n = g * g
    if args.attention == "flex":
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention) if args.device == "cuda" else flex_attention

    def make_mask(prefix):
        """Once a step, outside the blocks: FlexAttention's block mask (which tiles
        are empty, full or partial) or SDPA's boolean [B, 1, N, N] mask."""
        if args.attention == "flex":
            def prefix_causal(b, head, qi, ki):
                return (ki < prefix[b]) | (ki <= qi)
            return create_block_mask(prefix_causal, prefix.shape[0], None, n, n,
                                     device=prefix.device)
        pos = torch.arange(n, device=prefix.device)
        return ((pos.view(1, 1, n) < prefix.view(-1, 1, 1)) |
                (pos.view(1, 1, n) <= pos.view(1, n, 1))).unsqueeze(1)

    def attend(q, k, v, mask):
        if args.attention == "flex":
            return flex(q, k, v, block_mask=mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm_1, self.norm_2 = nn.LayerNorm(D, EPS), nn.LayerNorm(D, EPS)
            self.qkv = nn.Linear(D, 3 * D, bias=False)
            self.proj = nn.Linear(D, D, bias=False)
            self.fc1 = nn.Linear(D, MLP * D, bias=False)
            self.fc2 = nn.Linear(MLP * D, D, bias=False)

        def forward(self, x, mask):
            B = x.shape[0]
            q, k, v = self.qkv(self.norm_1(x)).view(B, n, 3, h, D // h).permute(2, 0, 3, 1, 4)
            x = x + self.proj(attend(q, k, v, mask).transpose(1, 2).reshape(B, n, D))
            return x + self.fc2(F.gelu(self.fc1(self.norm_2(x))))

    class HeadBlock(nn.Module):
        def __init__(self):
            super().__init__()
            w = c["head_width"]
            self.norm = nn.LayerNorm(w, EPS)
            self.fc1 = nn.Linear(w, MLP * w, bias=False)
            self.fc2 = nn.Linear(MLP * w, w, bias=False)

        def forward(self, x):
            return x + self.fc2(F.gelu(self.fc1(self.norm(x))))

    class AIM(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(c["channels"], D, p, stride=p)
            self.patch_norm = nn.LayerNorm(D, EPS)
            self.blocks = nn.ModuleList(Block() for _ in range(c["depth"]))
            self.post_norm = nn.LayerNorm(D, EPS)
            self.decoder_projection = nn.Linear(D, c["head_width"])
            self.head_blocks = nn.ModuleList(HeadBlock() for _ in range(c["head_depth"]))
            self.decoder_norm = nn.LayerNorm(c["head_width"], EPS)
            self.decoder_pred = nn.Linear(c["head_width"], p * p * c["channels"])
            self.register_buffer("pos", torch.from_numpy(sincos_2d(D, g)))
            self.register_buffer("head_pos", torch.from_numpy(sincos_2d(c["head_width"], g)))
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

        def forward(self, images, prefix):
            B = images.shape[0]
            x = self.patch_norm(self.proj(images).flatten(2).transpose(1, 2)) + self.pos
            mask = make_mask(prefix)
            for blk in self.blocks:
                x = blk(x, mask)
            x = self.decoder_projection(self.post_norm(x)) + self.head_pos
            for blk in self.head_blocks:
                x = blk(x)
            pred = self.decoder_pred(self.decoder_norm(x)).float()
            t = images.reshape(B, c["channels"], g, p, g, p).permute(0, 2, 4, 3, 5, 1).reshape(B, n, -1)
            t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, keepdim=True) + EPS)
            err = ((pred[:, :-1] - t[:, 1:]) ** 2).mean(-1)
            counted = (torch.arange(1, n, device=images.device).view(1, -1) >= prefix.view(-1, 1)).float()
            return (err * counted).sum() / counted.sum()

    model = AIM().to(args.device)
    if args.compile == "blocks":
        for blk in list(model.blocks) + list(model.head_blocks):
            blk.compile()
    forward = torch.compile(model) if args.compile == "whole" else model
    return model, forward


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=sorted(PRESETS), default="aim-600m")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--attention", choices=["flex", "sdpa"], default="flex")
    parser.add_argument("--compile", choices=["none", "blocks", "whole"], default="blocks")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    import torch
    c = PRESETS[args.model]
    torch.manual_seed(0)
    model, forward = build(args, c, torch)
    decay = [q for q in model.parameters() if q.ndim > 1]
    no_decay = [q for q in model.parameters() if q.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                            fused=args.device == "cuda")
    n = (c["image"] // c["patch"]) ** 2
    gen = torch.Generator(device=args.device).manual_seed(0)

    def batch():
        images = torch.randn(args.batch, c["channels"], c["image"], c["image"],
                             device=args.device, generator=gen)
        k = torch.randint(1, n, (args.batch // 2,), device=args.device, generator=gen)
        return images, torch.stack([k, n - k], 1).reshape(-1)

    autocast = torch.autocast(args.device, dtype=torch.bfloat16,
                              enabled=args.precision == "bf16")

    def step():
        images, prefix = batch()
        with autocast:
            loss = forward(images, prefix)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.detach()

    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    started = time.perf_counter()
    for _ in range(args.warmup):
        first = float(step())
    sync()
    warm = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    last = float(loss)
    sync()
    timed = time.perf_counter() - started
    ips = args.batch * args.steps / timed
    flops = forward_flops_per_image(c)
    print(json.dumps({
        "peer": f"torch-{args.compile}-{args.attention}", "model": args.model,
        "batch": args.batch, "precision": args.precision, "torch": torch.__version__,
        "images_per_second": ips, "step_seconds": timed / args.steps,
        "mfu": 3 * flops * ips / H100_BF16_DENSE,
        "warmup_seconds": warm, "first_loss": first, "last_loss": last,
        "peak_memory_gib": (torch.cuda.max_memory_allocated() / 2**30
                            if args.device == "cuda" else None)}))


if __name__ == "__main__":
    sys.exit(main())
