//===- Philox.h - the Philox4x32-10 counter-based generator ---------------===//
//
// Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC 2011). A
// pure function of (counter, key): any element of any tensor can be drawn on
// any rank or device in any order and gives the same bits.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_PHILOX_H
#define AIMC_COMMON_PHILOX_H

#include <array>
#include <cstdint>
#include <string>

namespace aim {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

/// Ten rounds of Philox4x32 on `counter` under `key`.
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

/// 32-bit FNV-1a of a string: turns a parameter or stream name into a key word.
uint32_t fnv1a32(const std::string &text);

/// 64-bit FNV-1a of bytes: the integrity check of artifact payloads.
uint64_t fnv1a64(const void *data, size_t size);

/// The key of a named stream (a parameter name, "prefix", ...) under a seed.
PhiloxKey streamKey(uint64_t seed, const std::string &streamName);

/// A float in [0, 1) with 24 random bits (exact in float32).
inline double unitFromBits(uint32_t bits) {
  return static_cast<double>(bits >> 8) * (1.0 / 16777216.0);
}

} // namespace aim

#endif // AIMC_COMMON_PHILOX_H
