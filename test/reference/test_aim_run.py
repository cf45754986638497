"""aim-run with compiled host code, end to end.

Usage: test_aim_run.py BIN_DIR WORK_DIR

A small Fashion-MNIST-shaped model (28x28x1, patch 7) compiled with
`aimc --target host`:
1. 20 steps of `aim-run train --fixed-batch` (constant lr) against
   `aim-interp --train-steps 20 --f32` on the same batch and weights: every
   step's loss within 1e-4 relative. Both compute in float32; they differ in
   the order of some sums (the compiled step runs the prefix-masked, fused
   graph) and in libm against std::exp, which moves losses by about 1e-7; a
   wrong kernel moves them by 1e-2 or more.
2. Resume is exact: 6 steps on the Fashion-MNIST stream in one go, and 3 +
   --resume 3, give the same losses and bit-identical weights and moments.
3. Damaged artifacts (truncations, flipped bytes) are rejected with a message,
   never a crash.
4. aim-run needs nothing but libc and libm (ldd).
5. A folder of images (gray and RGB PNGs, nested, one corrupt file) trains
   with the same losses on one or two data threads, the corrupt file is
   skipped with a warning, eval-loss is reproducible and keyed by its seed,
   and the run's pictures are PNGs of the expected sizes.
"""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run  # noqa: E402

CONFIG = """\
name: fmnist-tiny
image_size: 28
channels: 1
patch_size: 7
width: 16
depth: 1
heads: 2
mlp_ratio: 2
head_width: 8
head_depth: 1
"""
N = 16


def losses(output):
    return [float(l.split()[3]) for l in output.splitlines() if l.startswith("step ")]


def write_png(path, pixels):
    """An 8-bit gray (H, W) or RGB (H, W, 3) PNG, without PIL."""
    h, w = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    raw = b"".join(b"\0" + pixels[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_size(path):
    data = open(path, "rb").read(24)
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", data[16:24])  # width, height


def main():
    bin_dir, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    aimc, interp, aim_run = (os.path.join(bin_dir, t) for t in ("aimc", "aim-interp", "aim-run"))
    cfg = os.path.join(work, "fmnist-tiny.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    artifact = os.path.join(work, "m.aimx")
    run(aimc, "--model", cfg, "--batch", "4", "--target", "host", "-o", artifact)
    params = os.path.join(work, "p.safetensors")
    run(interp, "--model", cfg, "--init-params", params, "--seed", "3")
    rng = np.random.default_rng(0)
    np.save(os.path.join(work, "x.npy"), rng.normal(size=(4, 1, 28, 28)).astype(np.float32))
    np.save(os.path.join(work, "k.npy"), np.array([1, N - 1, 5, N - 5], dtype=np.int32))
    x, k = os.path.join(work, "x.npy"), os.path.join(work, "k.npy")
    failures = []

    # 1. Compiled against interpreted.
    compiled = losses(run(aim_run, "train", artifact, "--fixed-batch", x, k, "--init-params", params,
                          "--steps", "20", "--schedule", "constant", "--lr", "1e-3",
                          "--out", os.path.join(work, "fixed")))
    reference = losses(run(interp, "--model", cfg, "--params", params, "--images", x, "--prefix", k,
                           "--train-steps", "20", "--lr", "1e-3", "--f32"))
    worst = max(abs(a - b) / abs(b) for a, b in zip(compiled, reference))
    print(f"20 steps, aim-run vs aim-interp: worst relative loss difference {worst:.2e} (tol 1e-4); "
          f"loss {compiled[0]:.4f} -> {compiled[-1]:.4f}")
    if len(compiled) != 20 or worst > 1e-4:
        failures.append(f"aim-run and aim-interp disagree: {compiled} vs {reference}")

    # 2. Resume.
    whole = losses(run(aim_run, "train", artifact, "--steps", "6", "--seed", "7",
                       "--out", os.path.join(work, "whole")))
    first = losses(run(aim_run, "train", artifact, "--steps", "6", "--seed", "7", "--stop-after", "3",
                       "--out", os.path.join(work, "split")))
    rest = losses(run(aim_run, "train", artifact, "--steps", "6", "--resume",
                      "--out", os.path.join(work, "split")))
    if first + rest != whole:
        failures.append(f"resumed losses {first + rest} differ from {whole}")
    for name in ("model.safetensors", "optim.safetensors"):
        a = open(os.path.join(work, "whole", name), "rb").read()
        b = open(os.path.join(work, "split", name), "rb").read()
        if a != b:
            failures.append(f"resumed {name} differs from the uninterrupted run's")
    print(f"resume: 6 steps = 3 + 3, losses {whole[0]:.4f} .. {whole[-1]:.4f}, weights bit-identical")

    # 3. Damaged artifacts.
    data = open(artifact, "rb").read()
    damaged = os.path.join(work, "damaged.aimx")
    variants = [data[:n] for n in (0, 7, 64, len(data) // 2, len(data) - 1)]
    for offset in list(range(0, 64, 4)) + [len(data) // 3, len(data) // 2, len(data) - 100]:
        flipped = bytearray(data)
        flipped[offset] ^= 0x5A
        variants.append(bytes(flipped))
    for variant in variants:
        with open(damaged, "wb") as f:
            f.write(variant)
        result = subprocess.run([aim_run, "train", damaged, "--steps", "1", "--fixed-batch", x, k,
                                 "--out", os.path.join(work, "damaged-run")],
                                capture_output=True, text=True)
        if result.returncode < 0:
            failures.append(f"aim-run crashed (signal {-result.returncode}) on a damaged artifact")
        elif result.returncode == 0 and variant != data:
            # A flip in a field aim-run does not depend on may still run.
            pass
        elif result.returncode != 0 and "aim-run: error:" not in result.stderr:
            failures.append(f"no clear message for a damaged artifact: {result.stderr!r}")
    print(f"{len(variants)} damaged artifacts: no crash")

    # 5. A folder of images, evaluation, pictures.
    folder = os.path.join(work, "images")
    os.makedirs(os.path.join(folder, "nested"), exist_ok=True)
    for i in range(6):
        shape = (20 + i, 31, 3) if i % 2 else (28 + 2 * i, 28)
        write_png(os.path.join(folder, "nested" if i > 3 else "", f"img{i}.png"),
                  rng.integers(0, 256, size=shape))
    with open(os.path.join(folder, "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nbroken")
    runs = {}
    for threads in ("1", "2"):
        result = subprocess.run([aim_run, "train", artifact, "--data", folder, "--data-threads", threads,
                                 "--steps", "3", "--eval-data", folder, "--eval-images", "4",
                                 "--out", os.path.join(work, "folder-" + threads)],
                                capture_output=True, text=True)
        runs[threads] = losses(result.stdout)
        if result.returncode != 0:
            failures.append(f"training on a folder failed: {result.stderr}")
        elif "skipping an unreadable image" not in result.stderr or "broken.png" not in result.stderr:
            failures.append(f"the corrupt file was not reported: {result.stderr!r}")
    if len(runs["1"]) != 3 or runs["1"] != runs["2"]:
        failures.append(f"one and two data threads disagree: {runs}")
    pictures = {name: png_size(os.path.join(work, "folder-1", name))
                for name in ("loss.png", "predictions.png")}
    if pictures["loss.png"] != (900, 560) or pictures["predictions.png"] is None:
        failures.append(f"the run's pictures are missing or odd: {pictures}")
    checkpoint = os.path.join(work, "folder-1", "model.safetensors")
    evals = [run(aim_run, "eval-loss", artifact, "--params", checkpoint, "--images", "64", "--seed", s)
             for s in ("0", "0", "5")]
    if evals[0] != evals[1] or evals[0] == evals[2] or "over 64 images of Fashion-MNIST t10k" not in evals[0]:
        failures.append(f"eval-loss is not reproducible or ignores its seed: {evals}")
    print(f"image folder: losses {runs['1']} on 1 and 2 data threads, pictures {pictures}; "
          f"{evals[0].strip()}")

    # 4. Dependencies.
    libs = subprocess.run(["ldd", aim_run], capture_output=True, text=True).stdout
    allowed = ("linux-vdso", "libc.so", "libm.so", "ld-linux", "libdl.so", "libpthread.so")
    extra = [l.strip() for l in libs.splitlines() if l.strip() and not any(a in l for a in allowed)]
    if extra:
        failures.append(f"aim-run needs more than libc and libm: {extra}")
    print("ldd aim-run: " + ", ".join(l.split()[0] for l in libs.splitlines() if l.strip()))

    if failures:
        sys.exit("FAILED:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
