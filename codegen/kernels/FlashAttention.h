//===- FlashAttention.h - attention's forward on tensor cores ---*- C++ -*-===//
//
// `aimc --attention=flash` (docs/gpu-codegen.md, "Flash attention"): the
// forward of float32 attention as one kernel that multiplies bfloat16 tiles
// with the tensor cores' mma.sync.m16n8k16 (float32 accumulation), an
// online softmax in registers, nothing N x N stored; the backward stays the
// dense lowering's (it reads the output and row_logsumexp this kernel
// writes, as it reads the dense forward's).
//
// A block is 4 warps and owns kFlashQueryTile = 64 query rows of one
// (sample, head); a warp owns 16 of them. q is rounded to bfloat16 once,
// into the warp's mma A fragments; each tile of kFlashKeyTile = 64 keys is
// copied by the whole block into shared memory as bfloat16 pairs (k as
// [key][channel], v transposed as [channel][key], rows padded by 4 words
// so that the fragments' loads hit 32 different banks); a warp then
// computes its 16 x 64 scores with mma, updates its rows' running maximum
// and denominator (the quad of lanes that holds a row reduces with two
// shuffles), rounds the probabilities to bfloat16 as the next mma's A
// fragments (the accumulator's layout is the A layout, no shuffling) and
// accumulates p v. Channels are padded with zeros to a multiple of 16.
//
// Tiles follow the tile rule aim-prefix-mask records, for the block's 64
// queries: key tiles from tile_empty_from on are never loaded, tiles before
// tile_full_until are not masked, the others test each pair (and keys past
// N).
//
// The host backend runs the same kernel with a warp's 32 lanes in one host
// thread (KernelTarget::HostEmulation): a lane's value is an element of a
// vector<32xT>, shuffles are vector shuffles, and each mma.sync is emulated
// element by element from the fragment layouts of the PTX ISA (written
// apart from the kernel, so that the kernel's fragment bookkeeping is
// checked on the CPU against them).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_FLASHATTENTION_H
#define AIMC_CODEGEN_KERNELS_FLASHATTENTION_H

#include "codegen/kernels/KernelBuilding.h"
#include "dialects/aim/AimOps.h"

namespace mlir::aim {

/// Query rows a block (4 warps of 16 rows: an mma's M).
inline constexpr int64_t kFlashQueryTile = 64;
/// Keys a tile (the block's shared-memory copy of k and v).
inline constexpr int64_t kFlashKeyTile = 64;

/// Emits the forward's kernel before `op` (after bufferization); `op` is
/// left for the caller to erase.
void emitFlashAttentionForward(OpBuilder &b, AttentionKernelOp op,
                               KernelTarget target);

/// Emits the backward's two kernels before `op`: dq (and delta = <do, o>
/// of each row into a temporary), then dk and dv.
void emitFlashAttentionBackward(OpBuilder &b, AttentionGradKernelOp op,
                                KernelTarget target);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_FLASHATTENTION_H
