//===- TiledAttention.h - attention by the tile rule, a warp a row -*- C++ -*-===//
//
// Attention without the N x N score tensor (`aimc --attention=tiled`;
// docs/gpu-codegen.md, "Tiled attention"). Before bufferization, each
// aim.attention and aim.attention_grad on float32 becomes its buffer form
// (aim.attention_kernel, aim.attention_grad_kernel: its operands'
// buffers, results written into fresh ones); after bufferization, each of
// those becomes kernels in which one warp owns one row:
//
//  - forward: a warp a query row. Lane l holds channels l, l + 32, ... of
//    the row's head (coalesced 128-byte loads); each score is the lanes'
//    partial dot products summed by a butterfly of shuffles; an online
//    softmax (running maximum and denominator, the output rescaled as the
//    maximum grows) over the keys, in tiles of kKeyTile keys;
//  - backward: a warp a query row writes dq and delta = <do, o>; then a warp
//    a key row writes dk and dv, walking query tiles. p is recomputed from
//    the saved row_logsumexp; nothing N x N is stored.
//
// Tiles follow the tile rule recorded by aim-prefix-mask (aim.attention's
// description): a query row is a tile of one query; key tiles from
// tile_empty_from on are never visited (never loaded), full tiles run a
// loop without the mask test, partial ones test each pair. Without a rule
// every tile is partial.
//
// The host backend runs the same kernels with all 32 lanes of a warp in
// one host thread (KernelTarget::HostEmulation): the rows, tiles, lane
// channels and masks are the GPU's; only the lanes' sums are added in a
// different order.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_TILEDATTENTION_H
#define AIMC_CODEGEN_KERNELS_TILEDATTENTION_H

#include "codegen/kernels/KernelBuilding.h"
#include "codegen/kernels/LowerToLinalg.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::aim {

/// Keys (forward, dq) or queries (dk, dv) a tile: a warp's width.
inline constexpr int64_t kAttentionTile = 32;
/// Warps (rows) a block.
inline constexpr int64_t kAttentionWarpsPerBlock = 4;

/// Rewrites float32 aim.attention / aim.attention_grad ops without
/// live_queries into their buffer forms (before one-shot bufferization).
void populateTiledAttentionPatterns(RewritePatternSet &patterns);

/// Replaces every aim.attention_kernel and aim.attention_grad_kernel in
/// `module` (after bufferization) by its kernels -- FlashAttention.h's with
/// AttentionLowering::Flash -- and returns how many ops.
int lowerAttentionKernels(ModuleOp module, KernelTarget target,
                          AttentionLowering lowering);

/// The tile rule's bound for the query tile [qBegin, qEnd): the largest of
/// `rule`'s results; `none` without a rule.
Value attentionRuleBound(OpBuilder &b, Location loc, AffineMapAttr rule,
                         Value qBegin, Value qEnd, Value prefix, Value none);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_TILEDATTENTION_H
