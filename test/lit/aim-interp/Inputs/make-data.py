"""Writes the small .npy and .safetensors files of the aim-interp lit tests."""
import json
import struct
import sys

import numpy as np

out = sys.argv[1]


def safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, array) in tensors.items():
        blob = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


np.save(f"{out}/images.npy", np.array([[[[0, 1, 5, 2], [3, 7, 4, 9]]]], dtype=np.float32))
np.save(f"{out}/images-int.npy", np.zeros((1, 1, 2, 4), dtype=np.int32))
np.save(f"{out}/images-3d.npy", np.zeros((1, 2, 4), dtype=np.float32))
np.save(f"{out}/k1.npy", np.array([1], dtype=np.int32))
np.save(f"{out}/k-all-n.npy", np.array([2], dtype=np.int64))
np.save(f"{out}/k0.npy", np.array([0], dtype=np.int64))
np.save(f"{out}/k-float.npy", np.array([1.0], dtype=np.float32))
np.save(f"{out}/k-two.npy", np.array([1, 1], dtype=np.int32))
safetensors(f"{out}/w-zero.safetensors", {"w": ("F32", np.zeros((4, 4), np.float32))})
safetensors(f"{out}/w-wrong-shape.safetensors", {"w": ("F32", np.zeros((4, 3), np.float32))})
safetensors(f"{out}/w-extra.safetensors", {"w": ("F64", np.zeros((4, 4))), "v": ("F32", np.zeros(2, np.float32))})
safetensors(f"{out}/w-missing.safetensors", {"v": ("F32", np.zeros(2, np.float32))})
safetensors(f"{out}/w-int.safetensors", {"w": ("I32", np.zeros((4, 4), np.int32))})
with open(f"{out}/bad.npy", "wb") as f:
    f.write(b"PK\x03\x04 not an npy")
with open(f"{out}/truncated.safetensors", "wb") as f:
    f.write(struct.pack("<Q", 1000) + b"{}")
