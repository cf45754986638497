//===- Passes.td - the aim passes ---------------------------*- tablegen -*-===//
#ifndef AIM_PASSES_TD
#define AIM_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// AIM-aware optimisation
//===----------------------------------------------------------------------===//

def PrefixMaskPass : Pass<"aim-prefix-mask", "::mlir::ModuleOp"> {
  let summary = "Computes per-token work only for rows that reach the loss";
  let description = [{
    Two uses of the prefix-causal mask, on the entry function (run it before
    aim-autodiff, so the backward inherits both):

    1. Token liveness. Output row m of sample b reaches the loss iff
       `max(K_b, 1) - 1 <= m <= N - 2` (AIM.md, "Liveness"). The per-token
       ops between the last attention and the loss (the last block's output
       projection, residual and MLP, the final norm and the whole pre-training
       head) are rewritten to run on the live rows only:
       `aim.gather_live_rows` compacts their token inputs into a fixed
       capacity, `aim.scatter_live_rows` puts the prediction back for the
       loss. Capacity: B*N/2 under `mode=antithetic` (pairs K, N - K: exact,
       no padding), B*(N-1) under `mode=iid` (the upper bound, zero-padded).
       The mode is recorded as `aim.prefix_mode` on the function.
    2. Attention tiles. Every causal and prefix-causal `aim.attention`
       gets its tile rule (`tile_empty_from`, `tile_full_until`), valid for
       any tile sizes: kernels skip empty tiles and test the mask only in
       partial ones.

    Loss and gradients are unchanged (tested to 1e-12 with the interpreter).
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"forward\"",
           "The function to rewrite">,
    Option<"mode", "mode", "std::string", /*default=*/"\"antithetic\"",
           "Prefix sampling the program is compiled for: antithetic or iid">,
  ];
}

def ShardPass : Pass<"aim-shard", "::mlir::ModuleOp"> {
  let summary = "Rewrites @forward into the program of one rank of a dp x tp grid";
  let description = [{
    Run first, on the frontend's @forward. Adds `shard.grid @mesh(shape = DxT)`
    (axis 0: data parallel, axis 1: tensor parallel) and turns @forward into
    the program every rank runs (SPMD), with local shapes and explicit
    collectives (docs/distributed.md):

    - Data parallelism: the inputs are split over dp on the batch
      (`{aim.sharding = {dp = 0}}`). The loss stays the mean over the whole
      global batch: each rank weighs its mean by its number of targets
      (`aim.target_count`, `aim.reweight`) and the shares are summed
      (`shard.all_reduce` over dp). Gradients leave @loss_and_grads as this
      rank's share; aim-build-train-step sums them over dp.
    - Tensor parallelism (Megatron-LM) inside each trunk block: qkv and fc1
      column-parallel, proj and fc2 row-parallel, the heads split over tp. A
      parameter's split is its argument's `aim.sharding` (`{tp = 0,
      tp_groups = 3}` for qkv: three blocks q, k, v, each split); the pass
      adds these unless `default-shardings=false`, and then follows whatever
      the arguments say. Splits follow the values: a column-parallel linear
      takes its input through `aim.enter_partial` (its gradient is summed over
      tp), a row-parallel one leaves a partial sum that `shard.all_reduce`
      completes where a value is needed whole.

    `zero=1` records `{aim.zero = 1}`: aim-build-train-step then splits the
    AdamW moments over dp (ZeRO stage 1). A split the pass cannot follow (a
    layer norm of a split tensor, a bias on a row-parallel linear) is an
    error naming the op.
  }];
  let options = [
    Option<"dataParallel", "dp", "int64_t", /*default=*/"1",
           "Ranks of the data-parallel axis (they split the batch)">,
    Option<"tensorParallel", "tp", "int64_t", /*default=*/"1",
           "Ranks of the tensor-parallel axis (they split each block)">,
    Option<"zero", "zero", "int64_t", /*default=*/"0",
           "1: the optimiser state is split over dp (ZeRO stage 1)">,
    Option<"defaultShardings", "default-shardings", "bool", /*default=*/"true",
           "Give the trunk blocks' weights Megatron's tp splits where their "
           "arguments have no aim.sharding">,
  ];
  let dependentDialects = ["::mlir::shard::ShardDialect"];
}

def ScheduleCommunicationPass : Pass<"aim-schedule", "::mlir::ModuleOp"> {
  let summary = "Starts the dp gradient reductions of @train_step during the backward, in buckets";
  let description = [{
    On a per-rank program with dp > 1 (after aim-build-train-step): inlines
    @loss_and_grads into @train_step, so that the backward and the gradient
    reductions are one program, then moves each gradient's dp reduction
    (`{aim.gradient_reduction}`) to just after the gradient is computed. In
    the order the gradients become ready, the reductions form buckets of at
    most `bucket-bytes` (at least one each, as PyTorch DDP's); a bucket is
    started, all of it, once its last gradient is ready, marked `{aim.async,
    aim.bucket = k}`: the runtime runs it on its communication thread while
    the rest of the backward computes. One `aim.wait_collectives` before the
    first use of a reduced gradient (the clipping norm) is the dependency the
    program records. @loss_and_grads and @apply_gradients (gradient
    accumulation) keep their synchronous form.
  }];
  let options = [
    Option<"bucketBytes", "bucket-bytes", "int64_t", /*default=*/"25 << 20",
           "Largest bucket of gradient reductions started together (bytes)">,
  ];
}

def FusePass : Pass<"aim-fuse", "::mlir::ModuleOp"> {
  let summary = "Groups ops into aim.fusion kernels, as the cost model decides";
  let description = [{
    Runs on @loss_and_grads and @train_step. Starting from one kernel per
    op, it considers merging each producer into its consumer where a kernel
    template can do it: a GEMM with its epilogue (bias, GELU, residual add,
    cast), chains of elementwise and data-movement ops, a layer norm with the
    residual add that feeds it (two outputs), a layer norm recomputed as the
    prologue of the GEMM it feeds, and every AdamW update into one
    multi-tensor kernel. Reshapes and slices are views (a kernel reads its
    operand through strides: attention reads q, k and v inside qkv), so they
    are no kernel of their own. A merge is
    made when the cost model says it saves time on the target description:
    device-memory traffic removed and launches saved, against work added (a
    prologue is recomputed for every column tile of its GEMM). So the same IR
    fuses differently on different chips.
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"h100-sxm\"",
           "Target description: a built-in name or a JSON file">,
  ];
}

def Bf16GemmOperandsPass : Pass<"aim-bf16-gemm-operands", "::mlir::ModuleOp"> {
  let summary = "Rounds every GEMM operand to bfloat16 once, where it is computed";
  let description = [{
    Every `aim.linear` and `aim.matmul` of float32 operands gets bfloat16
    ones instead, and keeps its float32 result (float32 sums of exact
    products, as tensor cores compute them): one `aim.cast` to bf16 per
    value, right after the op that computes it (at the function's start for
    an argument), shared by every GEMM that reads the value. So the
    backward's GEMMs read the bf16 copy the forward made of a saved
    activation or a weight instead of rounding it again, and aim-fuse puts
    each cast in its producer's kernel, which writes the copy as it computes
    the value. The bias stays float32 (it is added to the result).

    Run it after aim-autodiff and aim-build-train-step (the gradients of a
    linear of bf16 operands are not defined) and before aim-fuse. aimc runs
    it for GPU code with `--gemm-operands bf16` (the default); the host code
    stays float32.
  }];
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

def PlanMemoryPass : Pass<"aim-plan-memory", "::mlir::ModuleOp"> {
  let summary = "Static arena offsets for every activation, from liveness";
  let description = [{
    For @loss_and_grads and @train_step: every value an op produces and the
    function does not return is an activation with a lifetime from its
    definition to its last use (views such as aim.reshape and aim.slice share
    their source's storage and extend its lifetime). Activations get fixed
    byte offsets in one arena, chosen so that two buffers alive at the same
    time never overlap (largest first, lowest free offset, 256-byte
    alignment). Arguments and results (parameters, gradients, optimiser
    state, inputs) are persistent buffers owned by the runtime.

    Records `aim.arena_offsets` (one offset per result; -1 for a view) on each
    op and `aim.arena_bytes` on the function. Sizes come from the IR's element
    types.
  }];
}

//===----------------------------------------------------------------------===//
// Training graph
//===----------------------------------------------------------------------===//

def AutodiffPass : Pass<"aim-autodiff", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode differentiation: @forward -> @loss_and_grads";
  let description = [{
    Adds `@loss_and_grads`, with the arguments of the entry function, which
    returns its loss and then one gradient per `{aim.param}` argument, in
    argument order. Each op on a path from a parameter to the loss supplies
    its own vector-Jacobian product (DifferentiableOpInterface); values used
    several times accumulate their gradients with `aim.add`. Integer operands
    and values no parameter influences get no gradient. Backward ops carry the
    scope of their forward op with `.grad` appended
    (`{aim.scope = "trunk.blocks.3.attn.grad"}`).
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"forward\"",
           "The function to differentiate (returns a scalar loss first)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def BuildTrainStepPass : Pass<"aim-build-train-step", "::mlir::ModuleOp"> {
  let summary = "Adds @train_step (loss and gradients, clipping and AdamW) and @apply_gradients";
  let description = [{
    Needs `@loss_and_grads` (run `aim-autodiff` first). Adds
    `@train_step(inputs..., lr, step, params..., exp_avgs..., exp_avg_sqs...)`
    returning `(loss, grad_norm, new params..., new exp_avgs...,
    new exp_avg_sqs...)`, exactly AIM's recipe: global-norm clipping
    (`min(1, max_norm / (norm + 1e-6))`, the norm reported before clipping)
    and AdamW with PyTorch's conventions, `t = step + 1`. The learning rate
    and the 0-based step are inputs, so one program serves any schedule.
    Weight decay applies to parameters of rank >= 2 and not to biases or
    LayerNorm parameters (rank 1), the usual decay groups.

    Also adds `@apply_gradients(lr, step, params..., exp_avgs...,
    exp_avg_sqs..., grads...)` returning `(grad_norm, new params..., new
    exp_avgs..., new exp_avg_sqs...)`: the same update for gradients summed
    elsewhere (micro-batches of gradient accumulation, data-parallel ranks).
  }];
  let options = [
    Option<"maxGradNorm", "max-grad-norm", "double", /*default=*/"1.0",
           "Clipping threshold of the global gradient norm">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", /*default=*/"0.95", "AdamW beta2">,
    Option<"epsilon", "epsilon", "double", /*default=*/"1e-8", "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.05",
           "Decoupled weight decay of the decay group">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

#endif // AIM_PASSES_TD
