//===- ForwardBuilder.cpp - a model config as aim IR ----------------------===//
//
// Follows AIM.md "Forward pass (pre-training)" step by step; the numbered
// comments in buildForward() are the steps of that section.
//
//===----------------------------------------------------------------------===//

#include "frontends/ForwardBuilder.h"

#include "dialects/aim/AimOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"

#include <cmath>

using namespace mlir;
using namespace mlir::aim;

namespace aim {

namespace {

class ForwardBuilder {
public:
  ForwardBuilder(MLIRContext &context, const ModelConfig &config, int64_t batch)
      : b(&context), config(config), batch(batch) {}

  OwningOpRef<ModuleOp> build();
  /// Adds `name` to `module`: the forward pass returning the loss, or (with
  /// `predictions`) the head's output [B, N, P] instead.
  void buildFunction(ModuleOp module, StringRef name, bool predictions);

private:
  RankedTensorType f32Tensor(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getF32Type());
  }
  /// Tokens [B, N, width].
  RankedTensorType tokens(int64_t width) {
    return f32Tensor({batch, config.numPatches(), width});
  }
  Value param(StringRef name) {
    auto it = params.find(name);
    assert(it != params.end() && "parameter list and graph disagree");
    return it->second;
  }
  /// Creates an op and tags it with the current model scope.
  template <typename OpTy, typename... Args> Value create(Args &&...args) {
    auto op = OpTy::create(b, b.getUnknownLoc(), std::forward<Args>(args)...);
    op->setAttr(AimDialect::kScopeAttrName, b.getStringAttr(scope));
    op->setLoc(NameLoc::get(b.getStringAttr(scope)));
    return op->getResult(0);
  }

  Value linear(Value x, StringRef name, int64_t outFeatures, bool hasBias);
  Value layerNorm(Value x, StringRef name);
  Value mlp(Value x, StringRef name, int64_t hidden);
  Value trunkBlock(Value x, int64_t index);
  Value headBlock(Value x, int64_t index);
  Value addPositionEmbedding(Value x, int64_t width);

  OpBuilder b;
  const ModelConfig &config;
  int64_t batch;
  std::string scope;
  llvm::StringMap<Value> params;
  Value images, prefix;
};

Value ForwardBuilder::linear(Value x, StringRef name, int64_t outFeatures,
                             bool hasBias) {
  auto inType = cast<RankedTensorType>(x.getType());
  SmallVector<int64_t> shape(inType.getShape());
  shape.back() = outFeatures;
  Value bias = hasBias ? param((name + ".bias").str()) : Value();
  return create<LinearOp>(f32Tensor(shape), x, param((name + ".weight").str()),
                          bias);
}

Value ForwardBuilder::layerNorm(Value x, StringRef name) {
  return create<LayerNormOp>(x.getType(), x, param((name + ".weight").str()),
                             param((name + ".bias").str()),
                             b.getF64FloatAttr(config.layerNormEpsilon));
}

Value ForwardBuilder::mlp(Value x, StringRef name, int64_t hidden) {
  int64_t width = cast<RankedTensorType>(x.getType()).getShape().back();
  auto approximation =
      config.gelu == "tanh" ? GeluApproximation::tanh : GeluApproximation::erf;
  Value h = linear(x, (name + ".fc1").str(), hidden, /*hasBias=*/false);
  h = create<GeluOp>(h.getType(), h, approximation);
  return linear(h, (name + ".fc2").str(), width, /*hasBias=*/false);
}

Value ForwardBuilder::addPositionEmbedding(Value x, int64_t width) {
  Value pos = create<PosEmbed2dOp>(f32Tensor({config.numPatches(), width}),
                                   config.gridHeight(), config.gridWidth());
  return create<AddOp>(x.getType(), x, pos);
}

Value ForwardBuilder::trunkBlock(Value x, int64_t index) {
  const int64_t d = config.width;
  std::string block = "trunk.blocks." + std::to_string(index);
  // x = x + Attn(LN1(x)): qkv without bias, split into q, k, v (each h heads
  // of dh, channels [head * dh, (head + 1) * dh)), prefix-causal attention.
  scope = block + ".attn";
  Value h = layerNorm(x, block + ".norm_1");
  Value qkv = linear(h, block + ".attn.qkv", 3 * d, /*hasBias=*/false);
  Value q = create<SliceOp>(tokens(d), qkv, 2, 0, d);
  Value k = create<SliceOp>(tokens(d), qkv, 2, d, d);
  Value v = create<SliceOp>(tokens(d), qkv, 2, 2 * d, d);
  double scale = 1.0 / std::sqrt(static_cast<double>(config.headDim()));
  // The row statistics of the softmax, kept for the backward pass.
  auto rowStats = f32Tensor({batch, config.heads, config.numPatches()});
  Value attn =
      create<AttentionOp>(TypeRange{tokens(d), rowStats}, q, k, v, prefix,
                          config.heads, MaskKind::prefix_causal,
                          llvm::APFloat(scale), /*tile_empty_from=*/nullptr,
                          /*tile_full_until=*/nullptr, /*live_queries=*/false);
  attn = linear(attn, block + ".attn.proj", d, /*hasBias=*/false);
  x = create<AddOp>(x.getType(), x, attn);
  // x = x + MLP(LN2(x)).
  scope = block + ".mlp";
  h = layerNorm(x, block + ".norm_2");
  return create<AddOp>(x.getType(), x,
                       mlp(h, block + ".mlp", config.mlpHidden()));
}

Value ForwardBuilder::headBlock(Value x, int64_t index) {
  std::string block = "head.decoder_blocks." + std::to_string(index);
  scope = block;
  Value h = layerNorm(x, block + ".norm");
  return create<AddOp>(x.getType(), x,
                       mlp(h, block + ".mlp", config.headMlpHidden()));
}

OwningOpRef<ModuleOp> ForwardBuilder::build() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(b.getUnknownLoc());
  (*module)->setAttr("aim.model", b.getStringAttr(config.name));
  buildFunction(*module, "forward", /*predictions=*/false);
  return module;
}

void ForwardBuilder::buildFunction(ModuleOp module, StringRef name,
                                   bool predictions) {
  const int64_t p = config.patchSize, c = config.channels;
  params.clear();

  // The signature: data first, then one argument per parameter.
  std::vector<ParamSpec> specs = parameterSpecs(config);
  SmallVector<Type> argTypes = {
      f32Tensor({batch, c, config.imageHeight, config.imageWidth}),
      RankedTensorType::get({batch}, b.getI32Type())};
  for (const ParamSpec &spec : specs)
    argTypes.push_back(f32Tensor(spec.shape));
  auto lossType = f32Tensor({});
  auto predictionType = tokens(config.patchValues());
  b.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(
      b, b.getUnknownLoc(), name,
      b.getFunctionType(argTypes, {predictions ? predictionType : lossType}));
  func.setArgAttr(0, AimDialect::kInputAttrName,
                  b.getStringAttr(kImagesInputName));
  func.setArgAttr(1, AimDialect::kInputAttrName,
                  b.getStringAttr(kPrefixInputName));
  Block *body = func.addEntryBlock();
  images = body->getArgument(0);
  prefix = body->getArgument(1);
  for (auto [i, spec] : llvm::enumerate(specs)) {
    func.setArgAttr(2 + i, AimDialect::kParamAttrName,
                    b.getStringAttr(spec.name));
    params[spec.name] = body->getArgument(2 + i);
  }
  b.setInsertionPointToEnd(body);

  // 1. Patch embedding: the convolution with kernel = stride = p is a linear
  //    map of each patch flattened in (channel, row, col) order.
  scope = "preprocessor.patchifier";
  Value patches = create<PatchifyOp>(tokens(config.patchValues()), images, p,
                                     PatchOrder::channel_first);
  Value projWeight =
      create<ReshapeOp>(f32Tensor({config.width, config.patchValues()}),
                        param("preprocessor.patchifier.proj.weight"));
  Value x = create<LinearOp>(tokens(config.width), patches, projWeight,
                             param("preprocessor.patchifier.proj.bias"));
  // 2. LayerNorm on the patch tokens. 3. Fixed sin-cos position embedding.
  x = layerNorm(x, "preprocessor.patchifier.norm");
  x = addPositionEmbedding(x, config.width);
  // 4. L pre-norm blocks.
  for (int64_t i = 0; i < config.depth; ++i)
    x = trunkBlock(x, i);
  // 5. Final LayerNorm.
  scope = "trunk.post_trunk_norm";
  x = layerNorm(x, "trunk.post_trunk_norm");
  // 6. Pre-training head, per token: projection, position embedding, M
  //    residual MLP blocks, LayerNorm, prediction of P pixel values.
  scope = "head";
  x = linear(x, "head.decoder_projection", config.headWidth, /*hasBias=*/true);
  x = addPositionEmbedding(x, config.headWidth);
  for (int64_t i = 0; i < config.headDepth; ++i)
    x = headBlock(x, i);
  scope = "head";
  x = layerNorm(x, "head.decoder_norm");
  Value prediction =
      linear(x, "head.decoder_pred", config.patchValues(), /*hasBias=*/true);
  if (predictions) {
    func.setResultAttr(0, AimDialect::kOutputAttrName,
                       b.getStringAttr(kPredictionOutputName));
    func::ReturnOp::create(b, b.getUnknownLoc(), prediction);
    return;
  }
  // 7. Output n predicts patch n + 1: the normalised-pixel loss over the
  //    non-prefix patches, targets in (row, col, channel) order.
  scope = "loss";
  Value targets = create<PatchifyOp>(tokens(config.patchValues()), images, p,
                                     PatchOrder::channel_last);
  Value loss = create<NormalizedPixelLossOp>(lossType, prediction, targets,
                                             prefix, b.getF64FloatAttr(1e-6));
  func::ReturnOp::create(b, b.getUnknownLoc(), loss);
}

} // namespace

OwningOpRef<ModuleOp> buildForwardModule(MLIRContext &context,
                                         const ModelConfig &config,
                                         int64_t batch) {
  context.loadDialect<AimDialect, func::FuncDialect>();
  return ForwardBuilder(context, config, batch).build();
}

void addPredictFunction(ModuleOp module, const ModelConfig &config,
                        int64_t batch) {
  ForwardBuilder(*module.getContext(), config, batch)
      .buildFunction(module, "predict", /*predictions=*/true);
}

} // namespace aim
