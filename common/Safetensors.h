//===- Safetensors.h - read and write .safetensors files ------------------===//
//
// The format: an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets}, then the raw row-major data.
// See https://github.com/huggingface/safetensors.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_SAFETENSORS_H
#define AIMC_COMMON_SAFETENSORS_H

#include "common/HostTensor.h"
#include "common/Status.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace aim {

/// Named tensors in the order they were added (the parameter order).
using NamedTensors = std::vector<std::pair<std::string, HostTensor>>;

/// Reads every tensor. Supports F32, F64, I32 and I64; any other dtype, a
/// truncated file or a malformed header is an error naming the file.
StatusOr<NamedTensors> readSafetensors(const std::string &path);

/// Writes atomically: to `path`.tmp, then renamed over `path`, so an existing
/// file is never left half-written.
Status writeSafetensors(const std::string &path, const NamedTensors &tensors);

} // namespace aim

#endif // AIMC_COMMON_SAFETENSORS_H
