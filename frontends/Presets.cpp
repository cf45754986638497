//===- Presets.cpp - the named model configurations -----------------------===//
#include "frontends/Presets.h"

namespace aim {

namespace {
/// AIM.md "Presets": 224 px, patch 14, RGB, MLP ratio 4, and the pre-training
/// head Dh = 2048, M = 12 for every size.
ModelConfig paperPreset(const char *name, int64_t width, int64_t depth,
                        int64_t heads) {
  ModelConfig c;
  c.name = name;
  c.imageHeight = c.imageWidth = 224;
  c.channels = 3;
  c.patchSize = 14;
  c.width = width;
  c.depth = depth;
  c.heads = heads;
  c.mlpRatio = 4;
  c.headWidth = 2048;
  c.headDepth = 12;
  return c;
}

ModelConfig fashionMnistPreset() {
  ModelConfig c;
  c.name = "aim-fmnist";
  c.imageHeight = c.imageWidth = 28;
  c.channels = 1;
  c.patchSize = 4;
  c.width = 192;
  c.depth = 6;
  c.heads = 6;
  c.mlpRatio = 4;
  c.headWidth = 192;
  c.headDepth = 2;
  return c;
}
} // namespace

const std::vector<ModelConfig> &modelPresets() {
  static const std::vector<ModelConfig> presets = {
      fashionMnistPreset(),
      paperPreset("aim-600m", 1536, 24, 12),
      paperPreset("aim-1b", 2048, 24, 16),
      paperPreset("aim-3b", 3072, 24, 24),
      paperPreset("aim-7b", 4096, 32, 32),
  };
  return presets;
}

std::optional<ModelConfig> findPreset(const std::string &name) {
  for (const ModelConfig &c : modelPresets())
    if (c.name == name)
      return c;
  return std::nullopt;
}

} // namespace aim
