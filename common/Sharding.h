//===- Sharding.h - a rank's part of a tensor and back ----------*- C++ -*-===//
//
// aim-shard records on each argument and result of a per-rank program how
// the rank's tensor is cut from the whole one (docs/distributed.md): tp cuts
// first, dp cuts what tp left. The runtime cuts whole parameters and
// checkpoints into parts, and puts parts back together to write one
// checkpoint any grid can read; the tests cut the whole program's results.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_SHARDING_H
#define AIMC_COMMON_SHARDING_H

#include "common/HostTensor.h"

namespace aim {

struct TensorSharding {
  int64_t tpDim = -1;   // dimension split over tp, or -1
  int64_t tpGroups = 1; // tpDim seen as this many blocks, each split
  int64_t dpDim = -1;   // dimension of the tp part split over dp, or -1
  bool whole() const { return tpDim < 0 && dpDim < 0; }
};

/// A rank of a dp x tp grid: row-major, rank = d * tp + t.
struct GridPosition {
  int64_t d = 0, dp = 1, t = 0, tp = 1;
  static GridPosition ofRank(int64_t rank, int64_t dp, int64_t tp) {
    return {rank / tp, dp, rank % tp, tp};
  }
};

/// Whether `shape` splits evenly as `sharding` says on a grid of dp x tp;
/// otherwise an error naming the dimension.
std::string checkSharding(const std::vector<int64_t> &shape,
                          const TensorSharding &sharding, int64_t dp,
                          int64_t tp);

/// The shape of a rank's part.
std::vector<int64_t> partShape(std::vector<int64_t> shape,
                               const TensorSharding &sharding, int64_t dp,
                               int64_t tp);

/// The whole shape of which `part` is a rank's part (partShape undone).
std::vector<int64_t> wholeShape(std::vector<int64_t> part,
                                const TensorSharding &sharding, int64_t dp,
                                int64_t tp);

/// The part of `whole` that rank `at` holds.
HostTensor cutTensor(const HostTensor &whole, const TensorSharding &sharding,
                     const GridPosition &at);

/// Writes `part`, rank `at`'s, into its place in `whole`.
void placeTensor(HostTensor &whole, const HostTensor &part,
                 const TensorSharding &sharding, const GridPosition &at);

} // namespace aim

#endif // AIMC_COMMON_SHARDING_H
