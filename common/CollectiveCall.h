//===- CollectiveCall.h - the call a per-rank program makes to communicate ===//
//
// The contract between host code generation (codegen/kernels/CollectiveCalls)
// and the runtime (runtime/GridCollectives): each shard collective of a
// per-rank program becomes one call
//
//   void aimcCollective(int32_t kind, int32_t axes, const float *in,
//                       float *out, int64_t inCount, int64_t outCount);
//
// over the ranks of the grid axes in the bit mask `axes` (bit 0: dp, bit 1:
// tp), ordered row-major over the grid. Scatters, gathers and slices are
// along dimension 0, so a rank's block is contiguous.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_COLLECTIVECALL_H
#define AIMC_COMMON_COLLECTIVECALL_H

#include <cstdint>

namespace aim {

inline constexpr const char *kCollectiveSymbol = "aimcCollective";
/// A collective started ahead (aim-schedule): the same arguments; `in` is
/// copied before the call returns, `out` is written by the time
///   void aimcCollectivesWait();
/// returns, which waits for every collective started before it.
inline constexpr const char *kCollectiveStartSymbol = "aimcCollectiveStart";
inline constexpr const char *kCollectivesWaitSymbol = "aimcCollectivesWait";

/// The GPU launcher code's: the same arguments, on device memory, in the
/// order of aim-run's stream (runtime/cuda/NcclCollectives.h).
inline constexpr const char *kCudaCollectiveSymbol = "aimcCudaCollective";
inline constexpr const char *kCudaCollectiveStartSymbol =
    "aimcCudaCollectiveStart";
inline constexpr const char *kCudaCollectivesWaitSymbol =
    "aimcCudaCollectivesWait";

enum class CollectiveKind : int32_t {
  AllReduce = 0,     // out = the group's sum of in
  ReduceScatter = 1, // out = this rank's block of the group's sum of in
  AllGather = 2,     // out = every rank's in, in group order
  AllSlice = 3,      // out = this rank's block of in (no communication)
};

} // namespace aim

#endif // AIMC_COMMON_COLLECTIVECALL_H
