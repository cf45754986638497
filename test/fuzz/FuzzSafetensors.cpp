//===- FuzzSafetensors.cpp - libFuzzer target: the safetensors reader -----===//
#include "common/FileIO.h"
#include "common/Safetensors.h"

#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path =
      "/tmp/aimc-fuzz-" + std::to_string(getpid()) + ".safetensors";
  if (!aim::writeFileAtomically(
          path, std::string(reinterpret_cast<const char *>(data), size)))
    return 0;
  aim::StatusOr<aim::NamedTensors> tensors = aim::readSafetensors(path);
  if (tensors)
    for (const auto &[name, t] : *tensors)
      (void)t.toDoubles(); // touch every byte the reader accepted
  return 0;
}
