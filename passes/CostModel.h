//===- CostModel.h - FLOPs, bytes and roofline time of a step ---*- C++ -*-===//
//
// A kernel is an aim.fusion op or, before fusion, one aim op (views such as
// aim.reshape and constants are free). Its cost on a target is
// max(tensor FLOPs / tensor peak + vector FLOPs / vector peak,
//     bytes / bandwidth) + launch cost,
// where bytes are what it reads and writes in device memory: its operands and
// results (a fusion's intermediates stay on chip).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_PASSES_COSTMODEL_H
#define AIMC_PASSES_COSTMODEL_H

#include "passes/TargetDescription.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace mlir::aim {

/// Arithmetic of one op, split by the units that run it.
struct OpWork {
  double tensorFlops = 0; // GEMMs and attention on tensor cores
  double vectorFlops = 0; // everything else
};

/// The work of a single (non-fusion) op; attention counts only the (query,
/// key) pairs its tile rule lets it visit, on average over the prefix
/// lengths (K uniform on [1, N-1]).
OpWork opWork(Operation *op);

/// Bytes that `op` (a single op or an aim.fusion) moves to and from device
/// memory on `target`.
double kernelBytes(Operation *op, const TargetDescription &target);

struct KernelCost {
  std::string name; // the aim.scope of the kernel
  std::string kind; // the op name, or "fusion:<kind>"
  int64_t ops = 0;  // aim ops inside
  double flops = 0, bytes = 0, seconds = 0;
  bool computeBound = false;
};

struct StepCost {
  std::string entry; // the function measured
  std::vector<KernelCost> kernels;
  double flops = 0, bytes = 0, seconds = 0;
  /// Parameters, gradients and both AdamW moments, at optimizer_bytes each.
  double persistentBytes = 0;
  /// The largest sum of live activations along the step, at activation_bytes.
  double peakActivationBytes = 0;
};

KernelCost kernelCost(Operation *op, const TargetDescription &target);

/// The cost of @train_step (calls expanded), or of @loss_and_grads or
/// @forward when the module has no train step.
StepCost estimateStepCost(ModuleOp module, const TargetDescription &target);

} // namespace mlir::aim

#endif // AIMC_PASSES_COSTMODEL_H
