//===- SplitFullReductions.h - sums to a scalar in two stages ---*- C++ -*-===//
//
// A linalg.generic that reduces every dimension to a rank-0 result has no
// parallel loop: on a GPU it is one thread walking the whole input. The
// first H100 run showed what that costs: the gradient norm's sums took 89%
// of aim-fmnist's step (one thread over each gradient tensor); aim-600m's
// step took 72 s. Where the combiner is an addition, such a reduction becomes
// two: partial sums over the outermost dimension made parallel (one thread
// per slice), then the sum of the partials into the original accumulator.
// Only the order of additions changes (float sums regrouped by slice), and
// for the better: a single float32 accumulator over a long sum rounds each
// addition at its own growing magnitude (the second H100 run found the
// host's one-accumulator gradient norm of aim-fmnist 0.35% below the
// float64 value; the split one within 1e-6). The host backend splits the
// same way, so that both add in the same order.
//
// A reduction with few parallel iterations and one long reduced dimension
// (LayerNorm's weight and bias gradients: a sum over every row for each of
// D columns, D / 128 blocks on a 132-SM GPU; or the second stage above) is
// split too, by upstream's linalg::splitReduction: the reduced dimension
// becomes chunks (parallel) of consecutive elements (reduced per thread),
// then a sum over the chunks.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_SPLITFULLREDUCTIONS_H
#define AIMC_CODEGEN_KERNELS_SPLITFULLREDUCTIONS_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::aim {

/// The GPU backend's threshold: smaller sums stay one-thread kernels (one
/// launch instead of two).
constexpr int64_t kSplitReductionsFrom = 4096;

/// Splits every full additive reduction on tensors of at least
/// `minElements` iterations whose outermost dimension has at least two.
/// Returns how many were split.
int splitFullReductions(ModuleOp module, int64_t minElements);

/// Rows enough to fill the GPU with one block a row: a reduction along
/// at least this many contiguous rows (LayerNorm's mean and variance at
/// D = 1536) is left whole for the row kernels. Split into chunks, each
/// row's sum took a partial-sums kernel and a sum-of-partials kernel, and
/// the stages after it could not join one row kernel (aim-600m's LayerNorm
/// backward was 24 kernels, 14 ms of a 330 ms step on an H100).
constexpr int64_t kRowsForRowKernels = 256;

/// Splits every single-dimension reduction with fewer than
/// `maxParallel` parallel iterations whose reduced extent is at least
/// `minReduced`, into enough chunks to reach about `maxParallel` threads;
/// not a reduction along kRowsForRowKernels or more contiguous rows.
/// Returns how many were split.
int splitNarrowReductions(ModuleOp module, int64_t maxParallel,
                          int64_t minReduced);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_SPLITFULLREDUCTIONS_H
