//===- GridCollectives.h - the collectives of a per-rank program -*- C++ -*-===//
//
// An artifact compiled with `aimc --mesh dp=D,tp=T` runs on D x T MPI ranks,
// rank r at (r / T, r % T) of the grid. Its host code calls
// aimcCollective(kind, axes, in, out, inCount, outCount)
// (common/CollectiveCall.h) for each shard collective; aim-run exports that
// symbol and routes each call here, to MPI over the ranks of the grid axes
// named: the dp group (the ranks with this tp index), the tp group, or the
// world.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_GRIDCOLLECTIVES_H
#define AIMC_RUNTIME_GRIDCOLLECTIVES_H

#include "common/Sharding.h"
#include "runtime/MpiComm.h"

namespace aim::rt {

class GridCollectives {
public:
  /// The groups of a dp x tp grid over `world` (of dp x tp ranks).
  static StatusOr<std::unique_ptr<GridCollectives>>
  create(MpiComm &world, int64_t dp, int64_t tp);

  const GridPosition &position() const { return at; }
  /// The ranks with this rank's tp index, by dp index.
  MpiComm &dataParallelGroup() const { return *dataParallel; }

  /// One collective of a per-rank program (common/CollectiveCall.h).
  Status call(int32_t kind, int32_t axes, const float *in, float *out,
              int64_t inCount, int64_t outCount);

  /// The grid aimcCollective calls go to; null: none (a call is an error).
  static void install(GridCollectives *grid);

private:
  GridCollectives() = default;
  /// The communicator of the grid axes in `axes` (bit 0 dp, bit 1 tp) and
  /// this rank's index in it.
  std::pair<MpiComm *, int64_t> group(int32_t axes);

  MpiComm *world = nullptr;
  std::unique_ptr<MpiComm> dataParallel, tensorParallel;
  GridPosition at;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_GRIDCOLLECTIVES_H
