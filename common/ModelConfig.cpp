//===- ModelConfig.cpp - validity rules and the parameter list ------------===//
#include "common/ModelConfig.h"

namespace aim {

std::vector<std::string> validateModelConfig(const ModelConfig &c,
                                             int64_t tensorParallel) {
  std::vector<std::string> errors;
  // Each size is bounded so that the products the rules and the compiler form
  // (P = patch_size^2 * channels, N, the MLP widths) stay far from int64's
  // limit; the parameter count is checked on its own below.
  auto positive = [&](const char *key, int64_t value) {
    if (value <= 0)
      errors.push_back(std::string(key) + " must be a positive integer, got " +
                       std::to_string(value));
    else if (value > kMaxConfigSize)
      errors.push_back(std::string(key) + " is " + std::to_string(value) +
                       ", beyond the largest size aimc accepts (" +
                       std::to_string(kMaxConfigSize) + ")");
    return value > 0 && value <= kMaxConfigSize;
  };
  bool sizesOk = positive("image_size (height)", c.imageHeight) &
                 positive("image_size (width)", c.imageWidth) &
                 positive("channels", c.channels) &
                 positive("patch_size", c.patchSize);
  bool widthOk = positive("width", c.width);
  bool depthOk = positive("depth", c.depth);
  bool headsOk = positive("heads", c.heads);
  bool mlpOk = positive("mlp_ratio", c.mlpRatio);
  bool headWidthOk = positive("head_width", c.headWidth);
  bool headDepthOk = positive("head_depth", c.headDepth);
  bool headMlpOk = positive("head_mlp_ratio", c.headMlpRatio);
  if (sizesOk && widthOk && depthOk && mlpOk && headWidthOk && headDepthOk &&
      headMlpOk) {
    std::optional<int64_t> count = checkedParameterCount(c);
    if (!count || *count > kMaxParameters)
      errors.push_back("the model has " +
                       (count ? std::to_string(*count) : "over 2^63") +
                       " parameters, beyond the " +
                       std::to_string(kMaxParameters) +
                       " aimc accepts: check width, depth and mlp_ratio");
  }

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

namespace {
/// The parameter list in its parts, so that a count need not list every block.
struct SpecWriter {
  const ModelConfig &c;
  std::vector<ParamSpec> specs;

  void linear(const std::string &name, int64_t out, int64_t in) {
    specs.push_back(
        {name + ".weight", {out, in}, InitKind::XavierUniform, true});
  }
  void bias(const std::string &name, int64_t size) {
    specs.push_back({name + ".bias", {size}, InitKind::Zeros, false});
  }
  void norm(const std::string &name, int64_t size) {
    specs.push_back({name + ".weight", {size}, InitKind::Ones, false});
    specs.push_back({name + ".bias", {size}, InitKind::Zeros, false});
  }

  void patchifier() {
    specs.push_back({"preprocessor.patchifier.proj.weight",
                     {c.width, c.channels, c.patchSize, c.patchSize},
                     InitKind::XavierUniform,
                     true});
    bias("preprocessor.patchifier.proj", c.width);
    norm("preprocessor.patchifier.norm", c.width);
  }
  void trunkBlock(int64_t i) {
    std::string block = "trunk.blocks." + std::to_string(i);
    norm(block + ".norm_1", c.width);
    linear(block + ".attn.qkv", 3 * c.width, c.width);
    linear(block + ".attn.proj", c.width, c.width);
    norm(block + ".norm_2", c.width);
    linear(block + ".mlp.fc1", c.mlpHidden(), c.width);
    linear(block + ".mlp.fc2", c.width, c.mlpHidden());
  }
  void trunkToHead() {
    norm("trunk.post_trunk_norm", c.width);
    linear("head.decoder_projection", c.headWidth, c.width);
    bias("head.decoder_projection", c.headWidth);
  }
  void headBlock(int64_t i) {
    std::string block = "head.decoder_blocks." + std::to_string(i);
    norm(block + ".norm", c.headWidth);
    linear(block + ".mlp.fc1", c.headMlpHidden(), c.headWidth);
    linear(block + ".mlp.fc2", c.headWidth, c.headMlpHidden());
  }
  void prediction() {
    norm("head.decoder_norm", c.headWidth);
    linear("head.decoder_pred", c.patchValues(), c.headWidth);
    bias("head.decoder_pred", c.patchValues());
  }

  /// Scalars in the specs written so far, then forgets them; nullopt on
  /// overflow.
  std::optional<int64_t> takeCount() {
    int64_t n = 0;
    for (const ParamSpec &p : specs) {
      int64_t size = 1;
      for (int64_t d : p.shape)
        if (__builtin_mul_overflow(size, d, &size))
          return std::nullopt;
      if (__builtin_add_overflow(n, size, &n))
        return std::nullopt;
    }
    specs.clear();
    return n;
  }
};
} // namespace

std::vector<ParamSpec> parameterSpecs(const ModelConfig &c) {
  SpecWriter writer{c, {}};
  writer.patchifier();
  for (int64_t i = 0; i < c.depth; ++i)
    writer.trunkBlock(i);
  writer.trunkToHead();
  for (int64_t i = 0; i < c.headDepth; ++i)
    writer.headBlock(i);
  writer.prediction();
  return std::move(writer.specs);
}

std::optional<int64_t> checkedParameterCount(const ModelConfig &c) {
  SpecWriter writer{c, {}};
  auto count = [&](auto write, int64_t repeats) -> std::optional<int64_t> {
    write();
    std::optional<int64_t> one = writer.takeCount();
    int64_t all;
    if (!one || __builtin_mul_overflow(*one, repeats, &all))
      return std::nullopt;
    return all;
  };
  std::optional<int64_t> parts[] = {
      count([&] { writer.patchifier(); }, 1),
      count([&] { writer.trunkBlock(0); }, c.depth),
      count([&] { writer.trunkToHead(); }, 1),
      count([&] { writer.headBlock(0); }, c.headDepth),
      count([&] { writer.prediction(); }, 1)};
  int64_t total = 0;
  for (const std::optional<int64_t> &part : parts)
    if (!part || __builtin_add_overflow(total, *part, &total))
      return std::nullopt;
  return total;
}

int64_t parameterCount(const ModelConfig &c) {
  return checkedParameterCount(c).value_or(-1);
}

} // namespace aim
