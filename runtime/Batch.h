//===- Batch.h - what a training step reads, and where it comes from ------===//
//
// Every data source (Debian's Fashion-MNIST, a folder of images) follows one
// stream: global sample position p holds image perm_e[p mod n] of epoch
// e = p / n, where perm_e is a Philox-keyed shuffle of (seed, e). Step s of
// a run with global batch G covers positions [s G, (s + 1) G); rank r of R
// takes its slice of G / R. Prefix lengths and augmentations are keyed by
// (seed, step or position, global sample index), so the mesh and the number
// of data threads never change what a step sees, and a run resumed at step s
// reads exactly what it would have read.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_BATCH_H
#define AIMC_RUNTIME_BATCH_H

#include "common/HostTensor.h"
#include "common/Status.h"
#include "common/PrefixSampling.h"

#include <cstdint>

namespace aim::rt {

struct BatchOptions {
  int64_t globalBatch = 64;
  int64_t rank = 0, ranks = 1;
  uint64_t seed = 0;
  PrefixMode prefixMode = PrefixMode::Antithetic;
  int64_t numPatches = 49; // N of the model: the range of prefix lengths
  int64_t firstStep = 0;   // where a resumed run starts
  int prefetch = 2;        // batches prepared ahead
  int threads = 1;         // data threads preparing them
};

struct Batch {
  int64_t step = 0;
  HostTensor images; // [B_local, C, H, W] float32, normalised
  HostTensor prefix; // [B_local] int32
};

/// Checks the mesh and pairing rules of `options`.
Status checkBatchOptions(const BatchOptions &options);

/// The image index of global sample position `position` (see above).
int64_t sampleAt(uint64_t seed, int64_t position, int64_t datasetSize);

/// The prefix lengths of the local slice of `step`'s batch.
HostTensor prefixLengthsOf(const BatchOptions &options, int64_t step);

} // namespace aim::rt

#endif // AIMC_RUNTIME_BATCH_H
