//===- Evaluation.h - validation loss on fixed targets --------------------===//
//
// The evaluation set is a fixed list of held-out images (Fashion-MNIST's
// t10k by default, or a folder: every readable image in path order, resized
// without augmentation) with a fixed prefix length per image: image i of the
// set gets samplePrefixLengths(mode, seed, 0, i, ..., "eval-prefix") -- in
// antithetic mode images 2j and 2j+1 get K and N - K. So two checkpoints, or
// the same checkpoint evaluated twice, are scored on exactly the same
// targets. The set is cut to a whole number of the artifact's batches.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_TOOLS_AIMRUN_EVALUATION_H
#define AIMC_TOOLS_AIMRUN_EVALUATION_H

#include "tools/aim-run/RunSupport.h"

namespace aim::rt {

struct EvalSet {
  HostTensor images;           // [count, C, H, W], normalised
  std::vector<int64_t> prefix; // one length per image
  int64_t count = 0;
  std::string source; // for messages: "Fashion-MNIST t10k", the folder
};

/// Up to `limit` images (0: all) of `dataDir` (empty: t10k; kSyntheticData:
/// generated images held out from training's).
StatusOr<EvalSet> loadEvalSet(const LoadedModel &model,
                              const std::string &dataDir, int64_t limit,
                              uint64_t seed);

/// Images [first, first + count) of the set, as one batch.
HostTensor sliceImages(const EvalSet &set, int64_t first, int64_t count);
HostTensor slicePrefix(const EvalSet &set, int64_t first, int64_t count);

/// The mean loss over every target of the set: each batch's mean weighted by
/// its number of targets (the sum of N - K). A per-rank program's `forward`
/// runs on data-parallel rank `rank` of `ranks`, on its slice of each batch,
/// and returns the loss of the whole batch.
StatusOr<double> evaluateLoss(const LoadedModel &model, EntryCall &forward,
                              NamedTensors &params, const EvalSet &set,
                              int64_t rank = 0, int64_t ranks = 1);

} // namespace aim::rt

#endif // AIMC_TOOLS_AIMRUN_EVALUATION_H
