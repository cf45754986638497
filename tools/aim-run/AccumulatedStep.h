//===- AccumulatedStep.h - one optimiser step over micro-batches -*- C++ -*-===//
//
// `aim-run train --accumulate A`: the artifact is compiled for a micro-batch
// of b images and a step takes A x b. Each micro-batch runs @loss_and_grads;
// the losses and gradients are averaged weighted by each micro-batch's number
// of targets, sum over its images of N - max(K, 1) -- the loss normaliser of
// the whole batch counts all of them, so the step equals one at batch A x b
// (the same samples and prefix lengths) up to float32 rounding -- in float64
// on the host; then @apply_gradients clips and updates.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_TOOLS_AIMRUN_ACCUMULATEDSTEP_H
#define AIMC_TOOLS_AIMRUN_ACCUMULATEDSTEP_H

#include "tools/aim-run/RunSupport.h"

namespace aim::rt {

class AccumulatedStep {
public:
  static StatusOr<AccumulatedStep> prepare(LoadedModel &model,
                                           int64_t microBatches);

  /// One step on `images` [A x b, ...] and `prefix` [A x b]; `arguments`
  /// binds params, state, lr and step, and its params and state are
  /// updated. Returns the loss of the whole batch and the gradient norm.
  Status operator()(const HostTensor &images, const HostTensor &prefix,
                    std::map<std::string, HostTensor *> &arguments,
                    float &loss, float &gradNorm);

private:
  AccumulatedStep(EntryCall grads, EntryCall apply)
      : grads(std::move(grads)), apply(std::move(apply)) {}
  EntryCall grads, apply;
  int64_t microBatches = 1, microBatch = 1, numPatches = 2;
  std::vector<HostTensor> sums; // one per gradient, float32 for the call
};

} // namespace aim::rt

#endif // AIMC_TOOLS_AIMRUN_ACCUMULATEDSTEP_H
