//===- ConfigParser.h - model configs from YAML or JSON files -------------===//
//
// The keys (docs/config.md): image_size (int or [H, W]), channels, patch_size,
// width, depth, heads, mlp_ratio, head_width, head_depth; optional name,
// head_mlp_ratio (4), gelu ("erf"), layer_norm_epsilon (1e-6).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_FRONTENDS_CONFIGPARSER_H
#define AIMC_FRONTENDS_CONFIGPARSER_H

#include "common/ModelConfig.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace aim {

/// Parses `text` (YAML, or JSON when `isJson`) from a file named `fileName`
/// (used in messages) and checks every validity rule. Errors name the key,
/// the line where known, and the fix.
llvm::Expected<ModelConfig>
parseModelConfig(llvm::StringRef text, llvm::StringRef fileName, bool isJson);

/// `--model` resolution: a preset name, or a path to a .yaml/.yml/.json file.
llvm::Expected<ModelConfig> loadModelConfig(llvm::StringRef presetOrPath);

} // namespace aim

#endif // AIMC_FRONTENDS_CONFIGPARSER_H
