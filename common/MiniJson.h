//===- MiniJson.h - a small JSON reader for file headers ------------------===//
//
// common/ links no LLVM, so it cannot use llvm::json; this reads the JSON found
// in safetensors headers (objects, arrays, strings, numbers, literals).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_MINIJSON_H
#define AIMC_COMMON_MINIJSON_H

#include "common/Status.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace aim {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  /// Keys in file order, so that readers can keep it.
  std::vector<std::pair<std::string, JsonValue>> object;

  const JsonValue *find(const std::string &key) const;
};

StatusOr<JsonValue> parseJson(const std::string &text);

/// Escapes a string for a JSON string literal (without the quotes).
std::string escapeJsonString(const std::string &s);

} // namespace aim

#endif // AIMC_COMMON_MINIJSON_H
