//===- Sharding.cpp - a rank's part of a tensor and back ------------------===//
#include "common/Sharding.h"

#include <cstring>

namespace aim {

namespace {
/// One cut along `dim`: of each of `blocks` blocks, the `part`-th of `parts`
/// pieces. Visits (whole offset, part offset, bytes) of each contiguous run.
struct Cut {
  int64_t dim, blocks, part, parts;
};

template <typename Visit>
void forEachRun(const std::vector<int64_t> &shape, size_t elementBytes,
                const Cut &cut, Visit visit) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < cut.dim; ++i)
    outer *= shape[i];
  for (size_t i = cut.dim + 1; i < shape.size(); ++i)
    inner *= shape[i];
  const int64_t extent = shape[cut.dim], block = extent / cut.blocks,
                length = block / cut.parts;
  const int64_t run = length * inner * elementBytes;
  int64_t partOffset = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t b = 0; b < cut.blocks; ++b) {
      int64_t row = b * block + cut.part * length;
      visit((o * extent + row) * inner * elementBytes, partOffset, run);
      partOffset += run;
    }
}

/// The cuts of `sharding` at `at`, tp first.
std::vector<Cut> cutsOf(const TensorSharding &s, const GridPosition &at) {
  std::vector<Cut> cuts;
  if (s.tpDim >= 0)
    cuts.push_back({s.tpDim, s.tpGroups, at.t, at.tp});
  if (s.dpDim >= 0)
    cuts.push_back({s.dpDim, 1, at.d, at.dp});
  return cuts;
}

/// `whole` with one cut applied.
HostTensor applyCut(const HostTensor &whole, const Cut &cut) {
  HostTensor part;
  part.dtype = whole.dtype;
  part.shape = whole.shape;
  part.shape[cut.dim] = whole.shape[cut.dim] / cut.parts;
  part.bytes.resize(whole.bytes.size() / cut.parts);
  forEachRun(whole.shape, dtypeSize(whole.dtype), cut,
             [&](int64_t from, int64_t to, int64_t bytes) {
               std::memcpy(&part.bytes[to], &whole.bytes[from], bytes);
             });
  return part;
}
} // namespace

std::string checkSharding(const std::vector<int64_t> &shape,
                          const TensorSharding &s, int64_t dp, int64_t tp) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  auto bad = [&](int64_t dim, int64_t pieces) {
    return "dimension " + std::to_string(dim) + " of " + shapeToString(shape) +
           " does not split into " + std::to_string(pieces);
  };
  if (s.tpDim >= 0 && (s.tpDim >= rank || s.tpGroups < 1 ||
                       shape[s.tpDim] % (s.tpGroups * tp) != 0))
    return bad(s.tpDim, s.tpGroups * tp);
  std::vector<int64_t> tpPart =
      partShape(shape, {s.tpDim, s.tpGroups, -1}, dp, tp);
  if (s.dpDim >= 0 && (s.dpDim >= rank || tpPart[s.dpDim] % dp != 0))
    return bad(s.dpDim, dp);
  return "";
}

std::vector<int64_t> partShape(std::vector<int64_t> shape,
                               const TensorSharding &s, int64_t dp,
                               int64_t tp) {
  if (s.tpDim >= 0)
    shape[s.tpDim] /= tp;
  if (s.dpDim >= 0)
    shape[s.dpDim] /= dp;
  return shape;
}

std::vector<int64_t> wholeShape(std::vector<int64_t> part,
                                const TensorSharding &s, int64_t dp,
                                int64_t tp) {
  if (s.dpDim >= 0)
    part[s.dpDim] *= dp;
  if (s.tpDim >= 0)
    part[s.tpDim] *= tp;
  return part;
}

HostTensor cutTensor(const HostTensor &whole, const TensorSharding &s,
                     const GridPosition &at) {
  HostTensor part = whole;
  for (const Cut &cut : cutsOf(s, at))
    part = applyCut(part, cut);
  return part;
}

void placeTensor(HostTensor &whole, const HostTensor &part,
                 const TensorSharding &s, const GridPosition &at) {
  std::vector<Cut> cuts = cutsOf(s, at);
  if (cuts.empty()) {
    whole.bytes = part.bytes;
    return;
  }
  // The tp part first (cut from whole), then the dp part placed in it.
  HostTensor tpPart = cuts.size() == 2 ? applyCut(whole, cuts[0]) : whole;
  HostTensor &target = cuts.size() == 2 ? tpPart : whole;
  const Cut &last = cuts.back();
  forEachRun(target.shape, dtypeSize(target.dtype), last,
             [&](int64_t into, int64_t from, int64_t bytes) {
               std::memcpy(&target.bytes[into], &part.bytes[from], bytes);
             });
  if (cuts.size() == 2)
    forEachRun(whole.shape, dtypeSize(whole.dtype), cuts[0],
               [&](int64_t into, int64_t from, int64_t bytes) {
                 std::memcpy(&whole.bytes[into], &tpPart.bytes[from], bytes);
               });
}

} // namespace aim
