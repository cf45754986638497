//===- ModelConfig.cpp - validity rules and the parameter list ------------===//
#include "common/ModelConfig.h"

namespace aim {

std::vector<std::string> validateModelConfig(const ModelConfig &c,
                                             int64_t tensorParallel) {
  std::vector<std::string> errors;
  auto positive = [&](const char *key, int64_t value) {
    if (value <= 0)
      errors.push_back(std::string(key) + " must be a positive integer, got " +
                       std::to_string(value));
    return value > 0;
  };
  bool sizesOk = positive("image_size (height)", c.imageHeight) &
                 positive("image_size (width)", c.imageWidth) &
                 positive("channels", c.channels) &
                 positive("patch_size", c.patchSize);
  bool widthOk = positive("width", c.width);
  positive("depth", c.depth);
  bool headsOk = positive("heads", c.heads);
  positive("mlp_ratio", c.mlpRatio);
  bool headWidthOk = positive("head_width", c.headWidth);
  positive("head_depth", c.headDepth);
  positive("head_mlp_ratio", c.headMlpRatio);

  if (sizesOk) {
    if (c.imageHeight % c.patchSize != 0 || c.imageWidth % c.patchSize != 0) {
      errors.push_back("image_size " + std::to_string(c.imageHeight) + "x" +
                       std::to_string(c.imageWidth) +
                       " is not divisible by patch_size " +
                       std::to_string(c.patchSize) +
                       ": choose a patch_size that divides both sides");
    } else if (c.numPatches() < 2) {
      errors.push_back("the image has " + std::to_string(c.numPatches()) +
                       " patch; the model needs N >= 2 patches (each predicts "
                       "the next): make patch_size smaller than image_size");
    }
    if (c.patchValues() < 2)
      errors.push_back("a patch has P = patch_size^2 * channels = " +
                       std::to_string(c.patchValues()) +
                       " value; the loss normalises each patch with Bessel's "
                       "correction, which needs P >= 2: use patch_size >= 2");
  }
  if (widthOk && c.width % 4 != 0)
    errors.push_back("width " + std::to_string(c.width) +
                     " must be divisible by 4 (the sin-cos position embedding "
                     "splits it into row/column and sin/cos quarters)");
  if (headWidthOk && c.headWidth % 4 != 0)
    errors.push_back("head_width " + std::to_string(c.headWidth) +
                     " must be divisible by 4 (the head adds a sin-cos "
                     "position embedding of that width)");
  if (widthOk && headsOk && c.width % c.heads != 0)
    errors.push_back("width " + std::to_string(c.width) +
                     " is not divisible by heads " + std::to_string(c.heads) +
                     ": choose heads that divide width");
  if (headsOk && tensorParallel > 0 && c.heads % tensorParallel != 0)
    errors.push_back("heads " + std::to_string(c.heads) +
                     " is not divisible by the tensor-parallel degree " +
                     std::to_string(tensorParallel));
  if (c.gelu != "erf" && c.gelu != "tanh")
    errors.push_back("gelu must be \"erf\" (AIM) or \"tanh\", got \"" + c.gelu +
                     "\"");
  if (!(c.layerNormEpsilon > 0))
    errors.push_back("layer_norm_epsilon must be positive");
  return errors;
}

std::vector<ParamSpec> parameterSpecs(const ModelConfig &c) {
  std::vector<ParamSpec> specs;
  auto linear = [&](const std::string &name, int64_t out, int64_t in) {
    specs.push_back(
        {name + ".weight", {out, in}, InitKind::XavierUniform, true});
  };
  auto bias = [&](const std::string &name, int64_t size) {
    specs.push_back({name + ".bias", {size}, InitKind::Zeros, false});
  };
  auto norm = [&](const std::string &name, int64_t size) {
    specs.push_back({name + ".weight", {size}, InitKind::Ones, false});
    specs.push_back({name + ".bias", {size}, InitKind::Zeros, false});
  };
  const int64_t d = c.width, dh = c.headWidth;

  specs.push_back({"preprocessor.patchifier.proj.weight",
                   {d, c.channels, c.patchSize, c.patchSize},
                   InitKind::XavierUniform,
                   true});
  bias("preprocessor.patchifier.proj", d);
  norm("preprocessor.patchifier.norm", d);
  for (int64_t i = 0; i < c.depth; ++i) {
    std::string block = "trunk.blocks." + std::to_string(i);
    norm(block + ".norm_1", d);
    linear(block + ".attn.qkv", 3 * d, d);
    linear(block + ".attn.proj", d, d);
    norm(block + ".norm_2", d);
    linear(block + ".mlp.fc1", c.mlpHidden(), d);
    linear(block + ".mlp.fc2", d, c.mlpHidden());
  }
  norm("trunk.post_trunk_norm", d);
  linear("head.decoder_projection", dh, d);
  bias("head.decoder_projection", dh);
  for (int64_t i = 0; i < c.headDepth; ++i) {
    std::string block = "head.decoder_blocks." + std::to_string(i);
    norm(block + ".norm", dh);
    linear(block + ".mlp.fc1", c.headMlpHidden(), dh);
    linear(block + ".mlp.fc2", dh, c.headMlpHidden());
  }
  norm("head.decoder_norm", dh);
  linear("head.decoder_pred", c.patchValues(), dh);
  bias("head.decoder_pred", c.patchValues());
  return specs;
}

int64_t parameterCount(const ModelConfig &c) {
  int64_t n = 0;
  for (const ParamSpec &p : parameterSpecs(c)) {
    int64_t size = 1;
    for (int64_t d : p.shape)
      size *= d;
    n += size;
  }
  return n;
}

} // namespace aim
