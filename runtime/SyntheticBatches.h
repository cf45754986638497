//===- SyntheticBatches.h - generated images, for machines without data -*- C++ -*-===//
//
// `aim-run train --data synthetic`: each image is a sum of three random
// plane waves per channel plus a little noise, drawn from Philox keyed by
// (seed, global sample position) -- so the stream is the same for every
// thread count and mesh, needs no files, and has structure a model can learn
// (a smooth pattern predicts its next patch), unlike pure noise. Values are
// roughly zero-mean, unit-variance, as normalised pixels are.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_SYNTHETICBATCHES_H
#define AIMC_RUNTIME_SYNTHETICBATCHES_H

#include "runtime/Batch.h"
#include "runtime/ImageFolderBatches.h"
#include "runtime/Prefetcher.h"

#include <memory>

namespace aim::rt {

class SyntheticBatches {
public:
  static StatusOr<std::unique_ptr<SyntheticBatches>>
  open(const ModelImageShape &shape, const BatchOptions &options);

  /// The next step's batch, in order; blocks until it is ready.
  StatusOr<Batch> next() { return prefetcher->next(); }

  /// Builds the batch of `step` directly, on the calling thread (no stream,
  /// no data threads: what aim-run check and bench need).
  static Batch make(const ModelImageShape &shape, const BatchOptions &options,
                    int64_t step);

private:
  SyntheticBatches(ModelImageShape shape, BatchOptions options);

  ModelImageShape shape;
  BatchOptions options;
  std::unique_ptr<Prefetcher> prefetcher; // last: stops before the rest goes
};

/// Image `position` of the synthetic stream of `seed`: C*H*W values.
std::vector<float> syntheticImage(const ModelImageShape &shape, uint64_t seed,
                                  int64_t position);

} // namespace aim::rt

#endif // AIMC_RUNTIME_SYNTHETICBATCHES_H
