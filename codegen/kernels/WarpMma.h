//===- WarpMma.h - a warp's registers and tensor-core MMA, GPU or host -*- C++
//-*-===//
//
// Building blocks of kernels in which a warp multiplies bfloat16 tiles with
// mma.sync.aligned.m16n8k16 (FlashAttention.h), for both targets:
//
//  - on the GPU (KernelTarget::GpuLaunch) a lane value is this thread's
//    scalar, shuffles are shfl.sync and an MMA is nvvm.mma.sync;
//  - emulated on the host (KernelTarget::HostEmulation) one host thread
//    holds the whole warp: a lane value is a vector<32 x T> (element l is
//    lane l's), shuffles are vector shuffles, and an MMA is computed element
//    by element from the PTX ISA's fragment layouts, written here apart from
//    the kernels, so that a kernel's fragment bookkeeping is checked against
//    them on the CPU.
//
// Fragments of m16n8k16 with 16-bit A and B (groupID = lane / 4,
// threadID_in_group = lane % 4): A (16 x 16, row-major) is 4 words of
// bfloat16 pairs a lane, B (16 x 8, column-major) 2 words, C and D (16 x 8)
// 4 floats: register r of lane l is row l / 4 + 8 (r / 2), column 2 (l % 4)
// + r % 2. Laid out that way, an accumulator's registers are already the A
// fragment of the next product (rows l / 4 and + 8, columns 2 (l % 4) and
// + 1, of two adjacent n-blocks): only rounded and packed.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_WARPMMA_H
#define AIMC_CODEGEN_KERNELS_WARPMMA_H

#include "codegen/kernels/KernelBuilding.h"

namespace mlir::aim {

inline constexpr int64_t kWarpLanes = 32;

/// Two float32 values (scalars or lane vectors) rounded to bfloat16
/// (nearest even) and packed into one 32-bit word, `low` in the low half:
/// the order of an mma fragment register's two elements.
Value packBf16Pair(OpBuilder &b, Location loc, KernelTarget target, Value low,
                   Value high);

/// On the host, the scratch an emulated mma.sync works in:
/// memref<4x32xi32>, memref<2x32xi32>, memref<4x32xf32>.
struct MmaScratch {
  Value a, b, c;
};

/// The scratch, allocated on the stack by `entry` (a function's start).
MmaScratch createMmaScratch(OpBuilder &entry, Location loc);

/// One warp's registers (see the file comment).
struct Lanes {
  KernelTarget target;
  Value lane;         // the GPU's lane id (index); null on the host
  MmaScratch scratch; // the host's

  bool onHost() const { return target == KernelTarget::HostEmulation; }

  /// `scalar` in every lane.
  Value constant(OpBuilder &b, Location loc, TypedAttr scalar) const;
  Value f32(OpBuilder &b, Location loc, double v) const;

  /// Each lane's `compute(lane)`, for what needs nothing of other lanes
  /// (addresses, loads, masks); on the host lane after lane.
  Value
  perLane(OpBuilder &b, Location loc, Type scalar,
          function_ref<Value(OpBuilder &, Location, Value)> compute) const;

  /// `use(lane, values at lane)` for each lane (stores).
  void forEachLane(
      OpBuilder &b, Location loc, ValueRange values,
      function_ref<void(OpBuilder &, Location, Value, ValueRange)> use) const;

  /// The value of lane (this lane xor `mask`).
  Value xorShuffle(OpBuilder &b, Location loc, Value v, int64_t mask) const;

  /// d = a b + c (mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32).
  SmallVector<Value, 4> mma(OpBuilder &b, Location loc, ArrayRef<Value> a,
                            ArrayRef<Value> bm, ArrayRef<Value> c) const;
};

/// An mma B fragment (k x n = 16 x 8) out of a shared [n][k pair] array of
/// words: lane l reads row nBase + l / 4, words wordBase + l % 4 and + 4.
SmallVector<Value, 2> bFragment(OpBuilder &b, Location loc, const Lanes &lanes,
                                Value shared, int64_t nBase, int64_t wordBase);

/// Where register r of lane `lane` of an accumulator's n-block `block` (8
/// columns) sits: row lane / 4 + 8 (r / 2), column 8 block + 2 (lane % 4) +
/// r % 2.
std::pair<Value, Value> accumulatorAt(OpBuilder &b, Location loc, Value lane,
                                      int64_t block, int64_t r);

/// The A fragment of k-step `step` (16 columns) out of accumulators `acc`
/// (n-blocks 2 step and 2 step + 1, 4 registers each), rounded to bfloat16.
SmallVector<Value, 4> aFragmentOfAccumulators(OpBuilder &b, Location loc,
                                              KernelTarget target,
                                              ArrayRef<Value> acc,
                                              int64_t step);

Value addIndex(OpBuilder &b, Location loc, Value x, int64_t y);
Value mulIndex(OpBuilder &b, Location loc, Value x, int64_t y);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_WARPMMA_H
