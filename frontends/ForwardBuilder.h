//===- ForwardBuilder.h - a model config as aim IR ------------------------===//
#ifndef AIMC_FRONTENDS_FORWARDBUILDER_H
#define AIMC_FRONTENDS_FORWARDBUILDER_H

#include "common/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

namespace aim {

/// Names of the data arguments of @forward, tagged {aim.input = "..."}.
inline constexpr const char *kImagesInputName = "images";
inline constexpr const char *kPrefixInputName = "prefix";
inline constexpr const char *kPredictionOutputName = "prediction";

/// Builds `func.func @forward(images, prefix, params...) -> loss` for a valid
/// `config` and batch size, following the IR contract (docs/architecture.md):
/// static shapes, depth unrolled, one argument per parameter in
/// parameterSpecs() order tagged {aim.param = name}, every op tagged with its
/// model scope {aim.scope = "trunk.blocks.3.attn"}.
mlir::OwningOpRef<mlir::ModuleOp> buildForwardModule(mlir::MLIRContext &context,
                                                     const ModelConfig &config,
                                                     int64_t batch);

/// Adds `@predict` to `module`: the forward pass up to the head's output
/// [B, N, P] (output n predicts patch n + 1, normalised pixels in (row, col,
/// channel) order), every row computed -- for pictures of what the model
/// predicts, not for training.
void addPredictFunction(mlir::ModuleOp module, const ModelConfig &config,
                        int64_t batch);

} // namespace aim

#endif // AIMC_FRONTENDS_FORWARDBUILDER_H
