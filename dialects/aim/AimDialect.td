//===- AimDialect.td - the aim dialect definition ---------*- tablegen -*-===//
//
// The aim dialect: AIM's training graph at the level a model author thinks in.
//
//===----------------------------------------------------------------------===//

#ifndef AIM_DIALECT_TD
#define AIM_DIALECT_TD

include "mlir/IR/OpBase.td"

def Aim_Dialect : Dialect {
  let name = "aim";
  let cppNamespace = "::mlir::aim";
  let summary = "Graph-level ops for autoregressive image models (AIM).";
  let description = [{
    The `aim` dialect describes the pre-training graph of an autoregressive image
    model (El-Nouby et al., 2024) on builtin tensors with value semantics: patch
    embedding, layer norm, attention with its mask kind, GELU, the fixed sin-cos
    position embedding and the normalised-pixel loss. Shapes are static, depth is
    unrolled, and every parameter is a function argument tagged with its name
    (`{aim.param = "trunk.blocks.0.attn.qkv.weight"}`), see docs/architecture.md.

    No N x N mask tensor ever exists in this dialect: attention carries its mask
    kind as an attribute and, for `prefix_causal`, the per-sample prefix lengths as
    an integer operand.
  }];
  // shard: the grid and collectives of per-rank programs (aim-shard).
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::shard::ShardDialect"];
  let extraClassDeclaration = [{
    /// Discardable attribute on a function argument naming the parameter it holds.
    static constexpr ::llvm::StringLiteral kParamAttrName = "aim.param";
    /// Discardable attribute on a data (non-parameter) argument of an entry
    /// point naming what it holds: "images", "prefix", later "lr", "step".
    static constexpr ::llvm::StringLiteral kInputAttrName = "aim.input";
    /// Discardable attribute on an optimiser-state argument or result of
    /// @train_step: "<param>.exp_avg" or "<param>.exp_avg_sq".
    static constexpr ::llvm::StringLiteral kStateAttrName = "aim.state";
    /// Discardable attribute naming a result of an entry point: "loss",
    /// "grad_norm", "<param>.grad".
    static constexpr ::llvm::StringLiteral kOutputAttrName = "aim.output";
    /// Discardable attribute on an op naming the model scope it belongs to, for
    /// example "trunk.blocks.3.attn", so that a reader (and a pass) finds block 3.
    static constexpr ::llvm::StringLiteral kScopeAttrName = "aim.scope";
    /// Discardable attribute on an argument of a per-rank program (aim-shard):
    /// how the rank's tensor is cut from the whole one, e.g. {dp = 0} (dim 0
    /// split over the dp axis) or {tp = 0, tp_groups = 3} (dim 0 viewed as 3
    /// blocks, each split over tp). tp applies first, dp to what it leaves.
    static constexpr ::llvm::StringLiteral kShardingAttrName = "aim.sharding";
    /// Module attribute of a per-rank program whose optimiser state is split
    /// over the dp ranks (ZeRO stage 1): 1.
    static constexpr ::llvm::StringLiteral kZeroAttrName = "aim.zero";
    /// Discardable attributes of a collective aim-schedule starts ahead: it
    /// runs on the runtime's communication thread until the next
    /// aim.wait_collectives; the bucket it was started with.
    static constexpr ::llvm::StringLiteral kAsyncAttrName = "aim.async";
    static constexpr ::llvm::StringLiteral kBucketAttrName = "aim.bucket";
  }];
}

class Aim_Op<string mnemonic, list<Trait> traits = []>
    : Op<Aim_Dialect, mnemonic, traits>;

#endif // AIM_DIALECT_TD
