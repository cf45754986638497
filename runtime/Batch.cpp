//===- Batch.cpp - the sample stream shared by every data source ----------===//
#include "runtime/Batch.h"

#include "common/Philox.h"

#include <string>
#include <vector>

namespace aim::rt {

namespace {
/// Fisher-Yates over [0, n) driven by Philox keyed by (seed, "shuffle") at
/// counter (epoch, i): the same permutation on every rank and every run.
std::vector<int64_t> epochPermutation(uint64_t seed, int64_t epoch, int64_t n) {
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i)
    perm[i] = i;
  PhiloxKey key = streamKey(seed, "shuffle");
  for (int64_t i = n - 1; i > 0; --i) {
    PhiloxCounter counter = {static_cast<uint32_t>(epoch),
                             static_cast<uint32_t>(i),
                             static_cast<uint32_t>(epoch >> 32), 0};
    uint32_t bits = philox4x32_10(counter, key)[0];
    int64_t j =
        static_cast<int64_t>((static_cast<uint64_t>(bits) * (i + 1)) >> 32);
    std::swap(perm[i], perm[j]);
  }
  return perm;
}
} // namespace

Status checkBatchOptions(const BatchOptions &options) {
  if (options.ranks <= 0 || options.rank < 0 || options.rank >= options.ranks ||
      options.globalBatch % options.ranks != 0)
    return Status::error(
        "the global batch " + std::to_string(options.globalBatch) +
        " must split evenly over " + std::to_string(options.ranks) + " ranks");
  int64_t local = options.globalBatch / options.ranks;
  if (options.prefixMode == PrefixMode::Antithetic && local % 2 != 0)
    return Status::error("antithetic prefix pairs need an even batch per rank, "
                         "got " +
                         std::to_string(local));
  if (options.threads < 1 || options.prefetch < 1)
    return Status::error("the data stream needs at least one thread and one "
                         "batch of prefetch");
  return Status::ok();
}

int64_t sampleAt(uint64_t seed, int64_t position, int64_t datasetSize) {
  // One permutation per epoch; recomputed when a batch crosses into another.
  thread_local int64_t cachedEpoch = -1;
  thread_local uint64_t cachedSeed = 0;
  thread_local int64_t cachedSize = 0;
  thread_local std::vector<int64_t> cached;
  int64_t epoch = position / datasetSize;
  if (epoch != cachedEpoch || seed != cachedSeed || datasetSize != cachedSize) {
    cached = epochPermutation(seed, epoch, datasetSize);
    cachedEpoch = epoch;
    cachedSeed = seed;
    cachedSize = datasetSize;
  }
  return cached[position % datasetSize];
}

HostTensor prefixLengthsOf(const BatchOptions &options, int64_t step) {
  const int64_t local = options.globalBatch / options.ranks;
  std::vector<int64_t> k =
      samplePrefixLengths(options.prefixMode, options.seed, step,
                          options.rank * local, local, options.numPatches);
  return HostTensor::fromDoubles(DType::I32, {local},
                                 std::vector<double>(k.begin(), k.end()));
}

} // namespace aim::rt
