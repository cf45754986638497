//===- DistributedCost.h - memory and communication of a mesh ---*- C++ -*-===//
//
// The cost report's distributed section (`aimc --report=cost --mesh dp=D,tp=T
// [--zero=1]`): per rank, on the target description's chip, what a training
// step of the global batch needs when its batch is split over D data-parallel
// ranks and each trunk block's attention and MLP over T tensor-parallel ranks
// (Megatron: qkv and fc1 by columns, proj and fc2 by rows, heads split).
// An analytic model on top of the single-device cost (CostModel.h), with its
// assumptions printed next to its numbers:
//  - memory: master parameters, gradients and both AdamW moments at
//    optimizer_bytes; the trunk's attention and MLP weights divided by T; the
//    moments by D with ZeRO-1; activations of the single-device peak divided
//    by D and by the micro-batches per step, and the part inside attention and MLP (qkv, attention output, fc1
//    and GELU outputs: 4 + 2r of 8 + 2r widths per token, r the MLP ratio;
//    the LayerNorm inputs and outputs stay whole) by T;
//  - compute: every kernel's roofline time divided by D (the batch), and
//    those of the trunk blocks other than LayerNorm by T too;
//  - communication per rank: the gradients' ring all-reduce, 2(D-1)/D of
//    their float32 bytes (with ZeRO-1 a reduce-scatter of the gradients and
//    an all-gather of the parameters: the same volume); per trunk block two
//    all-reduces forward and two backward of the block's activations
//    [B/D, N, width] at activation_bytes, 2(T-1)/T of them; both over a link
//    of `linkBandwidth` bytes/s per direction;
//  - overlap: the gradient all-reduce (or ZeRO-1's reduce-scatter) runs in
//    25 MB buckets beside the backward of the step's last micro-batch (the
//    backward is 2/3 of the compute): what exceeds it, and at least the
//    last bucket, is exposed; ZeRO-1's parameter all-gather follows the
//    optimiser and is exposed; so are the tensor-parallel all-reduces, on
//    the critical path.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_PASSES_DISTRIBUTEDCOST_H
#define AIMC_PASSES_DISTRIBUTEDCOST_H

#include "common/ModelConfig.h"
#include "passes/CostModel.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::aim {

struct Mesh {
  int64_t dp = 1, tp = 1;
  bool zero1 = false;
  /// Micro-batches per optimiser step (gradient accumulation): activations
  /// are those of one micro-batch; the gradients are reduced once a step.
  int64_t accumulate = 1;
};

/// "dp=8", "dp=4,tp=2", "tp=2": positive degrees, each named once.
llvm::Expected<Mesh> parseMesh(llvm::StringRef text);

/// Every reason `mesh` cannot run `config` at global batch `batch` (empty:
/// it can): divisibility of the batch (whole antithetic pairs per rank),
/// the heads and the MLP width.
std::vector<std::string> checkMesh(const ::aim::ModelConfig &config,
                                   int64_t batch, bool antithetic,
                                   const Mesh &mesh);

struct DistributedCost {
  double parameters = 0; // per rank, count
  double parameterBytes = 0, gradientBytes = 0, optimizerBytes = 0;
  double activationBytes = 0;
  double computeSeconds = 0, backwardSeconds = 0;
  double dataParallelBytes = 0, dataParallelSeconds = 0;
  double exposedDataParallelSeconds = 0;
  int64_t tensorParallelAllReduces = 0;
  double tensorParallelBytes = 0, tensorParallelSeconds = 0;
  double stepSeconds = 0;
  double totalBytes() const {
    return parameterBytes + gradientBytes + optimizerBytes + activationBytes;
  }
};

DistributedCost estimateDistributedCost(const ::aim::ModelConfig &config,
                                        int64_t batch, const StepCost &step,
                                        const TargetDescription &target,
                                        const Mesh &mesh,
                                        double linkBandwidth);

void printDistributedCost(llvm::raw_ostream &os,
                          const ::aim::ModelConfig &config, int64_t batch,
                          const TargetDescription &target, const Mesh &mesh,
                          double linkBandwidth, const DistributedCost &cost);

} // namespace mlir::aim

#endif // AIMC_PASSES_DISTRIBUTEDCOST_H
