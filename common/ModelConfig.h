//===- ModelConfig.h - an AIM model configuration, parsed and checked -----===//
//
// The structure both the compiler and the runtime read. Parsing YAML/JSON lives
// in frontends/ (it needs LLVM); the rules of AIM.md "Validity of a config"
// live here, so every reader of a config applies the same ones.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_MODELCONFIG_H
#define AIMC_COMMON_MODELCONFIG_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aim {

struct ModelConfig {
  std::string name = "custom";
  int64_t imageHeight = 0;
  int64_t imageWidth = 0;
  int64_t channels = 0;
  int64_t patchSize = 0;
  int64_t width = 0;     // D
  int64_t depth = 0;     // L
  int64_t heads = 0;     // h
  int64_t mlpRatio = 0;  // trunk MLP hidden = mlpRatio * D
  int64_t headWidth = 0; // Dh
  int64_t headDepth = 0; // M
  // Optional keys, with AIM's values as defaults.
  int64_t headMlpRatio = 4;
  std::string gelu = "erf"; // "erf" (AIM) or "tanh"
  double layerNormEpsilon = 1e-6;

  int64_t gridHeight() const { return imageHeight / patchSize; }
  int64_t gridWidth() const { return imageWidth / patchSize; }
  int64_t numPatches() const { return gridHeight() * gridWidth(); }        // N
  int64_t patchValues() const { return patchSize * patchSize * channels; } // P
  int64_t headDim() const { return width / heads; }                        // dh
  int64_t mlpHidden() const { return mlpRatio * width; }
  int64_t headMlpHidden() const { return headMlpRatio * headWidth; }
};

/// The largest value of any size key (image sides, widths, depths, ratios):
/// products of two or three of them stay far from int64's limit.
constexpr int64_t kMaxConfigSize = int64_t(1) << 20;
/// The largest parameter count a valid config may have (10^12: over 100
/// times aim-7b, and more than any device memory holds).
constexpr int64_t kMaxParameters = 1000000000000;

/// Every violated rule, each naming the key and the fix; empty when valid.
/// `tensorParallel` is the tp degree of the mesh the model will run on.
std::vector<std::string> validateModelConfig(const ModelConfig &config,
                                             int64_t tensorParallel = 1);

/// How a parameter is initialised (AIM.md, "Initialisation").
enum class InitKind { XavierUniform, Zeros, Ones };

/// One trainable tensor: name (the safetensors contract), shape, init, and
/// whether AdamW's weight decay applies (not to biases or LayerNorm params).
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  InitKind init;
  bool weightDecay;
};

/// The parameters of a config in AIM.md's order: the order of the @forward
/// arguments after the data, and of every checkpoint.
std::vector<ParamSpec> parameterSpecs(const ModelConfig &config);

/// Number of scalar parameters, or nullopt when it overflows int64.
std::optional<int64_t> checkedParameterCount(const ModelConfig &config);

/// Number of scalar parameters of a valid config (validateModelConfig bounds
/// it); -1 if the count would overflow.
int64_t parameterCount(const ModelConfig &config);

} // namespace aim

#endif // AIMC_COMMON_MODELCONFIG_H
