//===- AimSharding.h - the aim.sharding attribute --------------*- C++ -*-===//
//
// aim-shard records on each argument and result of a per-rank program how
// the rank's tensor is cut from the whole one, as the dictionary
// {tp = DIM, tp_groups = G, dp = DIM} (AimDialect.td, kShardingAttrName);
// common/Sharding.h holds the same as a TensorSharding. Every reader and
// writer of the attribute goes through these two functions.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_DIALECTS_AIM_AIMSHARDING_H
#define AIMC_DIALECTS_AIM_AIMSHARDING_H

#include "common/Sharding.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace mlir::aim {

/// The cuts `attr` names; a null or empty attribute: the whole tensor.
inline ::aim::TensorSharding readSharding(DictionaryAttr attr) {
  ::aim::TensorSharding s;
  if (!attr)
    return s;
  if (auto dim = attr.getAs<IntegerAttr>("tp"))
    s.tpDim = dim.getInt();
  if (auto groups = attr.getAs<IntegerAttr>("tp_groups"))
    s.tpGroups = groups.getInt();
  if (auto dim = attr.getAs<IntegerAttr>("dp"))
    s.dpDim = dim.getInt();
  return s;
}

/// The attribute of `s`: only the cuts it makes (tp_groups when above 1).
inline DictionaryAttr shardingAttr(Builder &b, const ::aim::TensorSharding &s) {
  SmallVector<NamedAttribute> entries;
  if (s.dpDim >= 0)
    entries.push_back(b.getNamedAttr("dp", b.getI64IntegerAttr(s.dpDim)));
  if (s.tpDim >= 0) {
    entries.push_back(b.getNamedAttr("tp", b.getI64IntegerAttr(s.tpDim)));
    if (s.tpGroups > 1)
      entries.push_back(
          b.getNamedAttr("tp_groups", b.getI64IntegerAttr(s.tpGroups)));
  }
  return b.getDictionaryAttr(entries);
}

/// Whether the per-rank program of a dp x tp grid sums over dp: when dp > 1,
/// and on a grid of one rank, which keeps every dp collective over itself
/// (the communication path run on one device, MPI or NCCL, must give the
/// whole step's numbers). With dp = 1 and tp > 1 the sums would be copies.
inline bool sumsOverDataParallel(int64_t dp, int64_t tp) {
  return dp > 1 || dp * tp == 1;
}

} // namespace mlir::aim

#endif // AIMC_DIALECTS_AIM_AIMSHARDING_H
