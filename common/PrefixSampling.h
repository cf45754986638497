//===- PrefixSampling.h - per-sample prefix lengths -----------------------===//
//
// AIM.md "Prefix lengths in training". Draws are keyed by (seed, "prefix") at
// counter (step, global sample index, 0, 0): never by rank or thread, so any
// mesh sees the same prefix lengths for the same samples.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_PREFIXSAMPLING_H
#define AIMC_COMMON_PREFIXSAMPLING_H

#include <cstdint>
#include <vector>

namespace aim {

enum class PrefixMode {
  /// Samples 2i and 2i+1 get K and N - K, K uniform on [1, N-1] (the default).
  Antithetic,
  /// Each K_b uniform on [1, N-1] independently (the paper).
  Iid,
};

/// Prefix lengths of `count` samples starting at global index `firstSample`
/// (even in antithetic mode, and `count` even) for `numPatches` = N >= 2.
/// `stream` names the Philox stream: "prefix" for training, "eval-prefix" for
/// the fixed targets of evaluation.
std::vector<int64_t> samplePrefixLengths(PrefixMode mode, uint64_t seed,
                                         uint64_t step, uint64_t firstSample,
                                         int64_t count, int64_t numPatches,
                                         const char *stream = "prefix");

} // namespace aim

#endif // AIMC_COMMON_PREFIXSAMPLING_H
