"""An independent PyTorch implementation of AIM's pre-training loss (AIM.md).

Written from AIM.md alone, with PyTorch's own building blocks (conv2d patch
embedding, layer_norm, an explicit N x N boolean mask, exact GELU), so that it
shares no code or layout decision with aimc's frontend or interpreter.
"""
import json
import struct

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[base + begin : base + end], dtype=DTYPES[entry["dtype"]])
        out[name] = array.reshape(entry["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    names = {np.dtype(v): k for k, v in DTYPES.items()}
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        blob = array.tobytes()
        header[name] = {"dtype": names[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def sincos_1d(width, positions):
    """MAE's get_1d_sincos_pos_embed_from_grid: [len(positions), width]."""
    omega = np.arange(width // 2, dtype=np.float64) / (width / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(width, grid_h, grid_w):
    """MAE's get_2d_sincos_pos_embed: first half encodes the column."""
    grid = np.meshgrid(np.arange(grid_w), np.arange(grid_h))  # grid[0] = column index
    emb_col = sincos_1d(width // 2, grid[0])
    emb_row = sincos_1d(width // 2, grid[1])
    return torch.from_numpy(np.concatenate([emb_col, emb_row], axis=1))


def prefix_causal_mask(prefix, n):
    """[B, 1, N, N] booleans: query q may attend key k iff k < K_b or k <= q."""
    q = torch.arange(n).view(1, n, 1)
    k = torch.arange(n).view(1, 1, n)
    kb = torch.as_tensor(prefix).view(-1, 1, 1)
    return ((k < kb) | (k <= q)).unsqueeze(1)


def aim_loss(cfg, params, images, prefix):
    """float64 loss of AIM.md's forward pass and loss. `params` holds numpy
    arrays or float64 torch tensors (which may require gradients)."""
    P = {k: v if torch.is_tensor(v) else torch.from_numpy(np.asarray(v, dtype=np.float64))
         for k, v in params.items()}
    x_img = torch.from_numpy(np.asarray(images, dtype=np.float64))
    B, C, H, W = x_img.shape
    p = cfg["patch_size"]
    gh, gw = H // p, W // p
    N = gh * gw
    D, h = cfg["width"], cfg["heads"]
    dh = D // h
    eps = 1e-6

    def ln(x, name):
        return F.layer_norm(x, (x.shape[-1],), P[name + ".weight"], P[name + ".bias"], eps)

    # 1. Patch embedding as the convolution it is.
    x = F.conv2d(x_img, P["preprocessor.patchifier.proj.weight"],
                 P["preprocessor.patchifier.proj.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)  # [B, N, D], raster order
    # 2, 3.
    x = ln(x, "preprocessor.patchifier.norm") + sincos_2d(D, gh, gw)
    mask = prefix_causal_mask(prefix, N)
    # 4. Pre-norm blocks.
    for i in range(cfg["depth"]):
        blk = f"trunk.blocks.{i}"
        y = ln(x, blk + ".norm_1")
        qkv = y @ P[blk + ".attn.qkv.weight"].T
        qkv = qkv.reshape(B, N, 3, h, dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, h, N, dh]
        scores = (q @ k.transpose(-2, -1)) / np.sqrt(dh)
        scores = scores.masked_fill(~mask, float("-inf"))
        a = torch.softmax(scores, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, N, D)
        x = x + a @ P[blk + ".attn.proj.weight"].T
        y = ln(x, blk + ".norm_2")
        y = F.gelu(y @ P[blk + ".mlp.fc1.weight"].T) @ P[blk + ".mlp.fc2.weight"].T
        x = x + y
    # 5.
    x = ln(x, "trunk.post_trunk_norm")
    # 6. Head.
    x = x @ P["head.decoder_projection.weight"].T + P["head.decoder_projection.bias"]
    x = x + sincos_2d(cfg["head_width"], gh, gw)
    for i in range(cfg["head_depth"]):
        blk = f"head.decoder_blocks.{i}"
        y = ln(x, blk + ".norm")
        x = x + F.gelu(y @ P[blk + ".mlp.fc1.weight"].T) @ P[blk + ".mlp.fc2.weight"].T
    x = ln(x, "head.decoder_norm")
    pred = x @ P["head.decoder_pred.weight"].T + P["head.decoder_pred.bias"]
    # Loss: targets in (row, col, channel) order, normalised per patch.
    t = x_img.reshape(B, C, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1).reshape(B, N, p * p * C)
    t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=True, keepdim=True) + eps)
    per_pair = ((pred[:, :-1] - t[:, 1:]) ** 2).mean(-1)  # [B, N-1]: pair (b, n) at n-1
    n_idx = torch.arange(1, N).view(1, -1)
    counted = n_idx >= torch.as_tensor(prefix).view(-1, 1)
    if counted.sum() == 0:
        raise ValueError("no loss target")
    return (per_pair * counted).sum() / counted.sum()
