//===- FashionMnistBatches.h - the Fashion-MNIST training stream -*- C++ -*-===//
//
// Debian's Fashion-MNIST train split as the stream of Batch.h (no
// augmentation: AIM.md normalisation only), prepared ahead by a Prefetcher.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_FASHIONMNISTBATCHES_H
#define AIMC_RUNTIME_FASHIONMNISTBATCHES_H

#include "common/FashionMnist.h"
#include "runtime/Batch.h"
#include "runtime/Prefetcher.h"

#include <memory>

namespace aim::rt {

class FashionMnistBatches {
public:
  /// Reads the train split and starts the data threads.
  static StatusOr<std::unique_ptr<FashionMnistBatches>>
  open(const BatchOptions &options);

  /// The next step's batch, in order; blocks until it is ready.
  Batch next() { return std::move(*prefetcher->next()); }

  /// Builds the batch of `step` directly, on the calling thread.
  Batch make(int64_t step) const;

private:
  FashionMnistBatches(BatchOptions options, IdxImages images);

  BatchOptions options;
  IdxImages images;
  std::unique_ptr<Prefetcher> prefetcher; // last: stops before the rest goes
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_FASHIONMNISTBATCHES_H
