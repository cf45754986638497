//===- FuzzConfig.cpp - libFuzzer target: the YAML and JSON config parser -===//
//
// The first input byte picks the syntax (odd: JSON), the rest is the file.
// Any config either parses into one that passes every validity rule or is an
// error with a message; the parser must never crash or leak.
#include "frontends/ConfigParser.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  bool isJson = data[0] & 1;
  llvm::StringRef text(reinterpret_cast<const char *>(data + 1), size - 1);
  llvm::Expected<aim::ModelConfig> config =
      aim::parseModelConfig(text, "fuzz.yaml", isJson);
  if (!config) {
    std::string message = llvm::toString(config.takeError());
    if (message.empty())
      abort(); // every rejection names its problem
  }
  return 0;
}
