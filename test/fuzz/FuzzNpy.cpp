//===- FuzzNpy.cpp - libFuzzer target: the .npy reader --------------------===//
#include "common/FileIO.h"
#include "common/Npy.h"

#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path =
      "/tmp/aimc-fuzz-" + std::to_string(getpid()) + ".npy";
  if (!aim::writeFileAtomically(
          path, std::string(reinterpret_cast<const char *>(data), size)))
    return 0;
  aim::StatusOr<aim::HostTensor> t = aim::readNpy(path);
  if (t)
    (void)t->toDoubles();
  return 0;
}
