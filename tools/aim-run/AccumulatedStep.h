//===- AccumulatedStep.h - one optimiser step over micro-batches -*- C++ -*-===//
//
// `aim-run train --accumulate A`: the artifact is compiled for a micro-batch
// of b images and a step takes A x b. Each micro-batch runs @loss_and_grads;
// the losses and gradients are averaged weighted by each micro-batch's number
// of targets, sum over its images of N - max(K, 1) -- the loss normaliser of
// the whole batch counts all of them, so the step equals one at batch A x b
// (the same samples and prefix lengths) up to float32 rounding -- in float64
// on the host; then @apply_gradients clips and updates. Data-parallel ranks
// (mpirun) are more micro-batches of the same step: their sums, the loss's
// and the target counts are added across ranks (MPI_Allreduce) before the
// division, so every rank applies the same update. A per-rank program
// (aimc --mesh) sums over its dp ranks itself, in @apply_gradients: each
// micro-batch is weighted by its targets on all dp ranks together (their
// counts summed over the dp group), and the host adds nothing across ranks.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_TOOLS_AIMRUN_ACCUMULATEDSTEP_H
#define AIMC_TOOLS_AIMRUN_ACCUMULATEDSTEP_H

#include "runtime/MpiComm.h"
#include "tools/aim-run/RunSupport.h"

namespace aim::rt {

class AccumulatedStep {
public:
  /// With `ranks` of several processes, each runs its own micro-batches
  /// and the weighted sums are added across them before the update.
  static StatusOr<AccumulatedStep> prepare(LoadedModel &model,
                                           int64_t microBatches,
                                           MpiComm *ranks = nullptr);
  /// For a per-rank program on a grid of `dp` data-parallel ranks: `dpGroup`
  /// sums the micro-batches' target counts.
  static StatusOr<AccumulatedStep> preparePerRank(LoadedModel &model,
                                                  int64_t microBatches,
                                                  MpiComm &dpGroup,
                                                  int64_t dp);

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
  MpiComm *ranks = nullptr;   // adds the weighted sums across processes
  MpiComm *dpGroup = nullptr; // adds the target counts (per-rank program)
  std::vector<HostTensor> sums; // one per gradient, float32 for the call
};

} // namespace aim::rt

#endif // AIMC_TOOLS_AIMRUN_ACCUMULATEDSTEP_H
