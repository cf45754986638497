//===- FashionMnistBatches.h - training batches on a worker thread -*- C++
//-*-===//
//
// The training stream over Debian's Fashion-MNIST: global sample position p
// holds image perm_e[p mod 60000] of epoch e = p / 60000, where perm_e is a
// Philox-keyed shuffle of (seed, e). Step s of a run with global batch G
// covers positions [s G, (s + 1) G); rank r of R takes its slice of G / R.
// Prefix lengths are keyed by (seed, step, index in the global batch), so
// the mesh never changes which samples and targets a step sees, and a run
// resumed at step s reads exactly what it would have read.
//
// Threading: one producer thread decodes and normalises batches ahead of the
// trainer into a bounded queue (prefetch depth); the trainer's own threads
// are the compute threads. Nothing else in the runtime starts threads.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_FASHIONMNISTBATCHES_H
#define AIMC_RUNTIME_FASHIONMNISTBATCHES_H

#include "common/FashionMnist.h"
#include "common/HostTensor.h"
#include "common/PrefixSampling.h"
#include "common/Status.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace aim::rt {

struct BatchOptions {
  int64_t globalBatch = 64;
  int64_t rank = 0, ranks = 1;
  uint64_t seed = 0;
  PrefixMode prefixMode = PrefixMode::Antithetic;
  int64_t numPatches = 49; // N of the model: the range of prefix lengths
  int64_t firstStep = 0;   // where a resumed run starts
  int prefetch = 2;        // batches decoded ahead
};

struct Batch {
  int64_t step = 0;
  HostTensor images; // [B_local, 1, 28, 28] float32, normalised
  HostTensor prefix; // [B_local] int32
};

/// The image index of global sample position `position` (see above).
int64_t sampleAt(uint64_t seed, int64_t position, int64_t datasetSize);

class FashionMnistBatches {
public:
  /// Reads the train split and starts the producer thread.
  static StatusOr<std::unique_ptr<FashionMnistBatches>>
  open(const BatchOptions &options);
  ~FashionMnistBatches();

  /// The next step's batch, in order; blocks until it is ready.
  Batch next();

  /// Builds the batch of `step` directly, on the calling thread.
  Batch make(int64_t step) const;

private:
  FashionMnistBatches(BatchOptions options, IdxImages images);
  void produce();

  BatchOptions options;
  IdxImages images;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Batch> ready;
  bool stopping = false;
  std::thread worker;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_FASHIONMNISTBATCHES_H
