//===- PrefixSampling.cpp - per-sample prefix lengths ---------------------===//
#include "common/PrefixSampling.h"

#include "common/Philox.h"

#include <cassert>

namespace aim {

namespace {
/// Uniform on [1, n - 1] from the draw of one sample (multiply-shift: no
/// modulo).
int64_t uniformPrefix(const PhiloxKey &key, uint64_t step, uint64_t sample,
                      int64_t n) {
  PhiloxCounter counter = {
      static_cast<uint32_t>(step), static_cast<uint32_t>(sample),
      static_cast<uint32_t>(sample >> 32), static_cast<uint32_t>(step >> 32)};
  uint32_t bits = philox4x32_10(counter, key)[0];
  return 1 + static_cast<int64_t>(
                 (static_cast<uint64_t>(bits) * static_cast<uint64_t>(n - 1)) >>
                 32);
}
} // namespace

std::vector<int64_t> samplePrefixLengths(PrefixMode mode, uint64_t seed,
                                         uint64_t step, uint64_t firstSample,
                                         int64_t count, int64_t numPatches,
                                         const char *stream) {
  assert(numPatches >= 2 && "AIM needs at least two patches");
  const PhiloxKey key = streamKey(seed, stream);
  std::vector<int64_t> k(count);
  for (int64_t i = 0; i < count; ++i) {
    uint64_t sample = firstSample + i;
    if (mode == PrefixMode::Iid) {
      k[i] = uniformPrefix(key, step, sample, numPatches);
    } else if (sample % 2 == 0) {
      // The pair is drawn once, from its even member's index.
      k[i] = uniformPrefix(key, step, sample, numPatches);
    } else {
      k[i] = numPatches - uniformPrefix(key, step, sample - 1, numPatches);
    }
  }
  return k;
}

} // namespace aim
