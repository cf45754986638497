//===- Checkpoint.h - run directories: weights, optimiser, state -*- C++
//-*-===//
//
// A checkpoint is three files in the run directory: model.safetensors (AIM's
// parameter names, loadable by Apple's PyTorch code), optim.safetensors
// (<name>.exp_avg, <name>.exp_avg_sq) and state.json. Each is written to a
// temporary name and renamed; state.json goes last, so a directory whose
// state.json reads back holds a complete checkpoint even if a run died while
// writing the next one.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CHECKPOINT_H
#define AIMC_RUNTIME_CHECKPOINT_H

#include "common/Safetensors.h"
#include "common/Status.h"

#include <string>

namespace aim::rt {

/// Where a run stands: enough to continue it bit for bit.
struct RunState {
  int64_t step = 0;         // steps done
  uint64_t seed = 0;        // the run's seed
  int64_t dataPosition = 0; // global samples consumed
  int64_t totalSteps = 0;   // the run's length (the schedule depends on it)
  std::string artifactHash; // the program the weights belong to
  int64_t threads = 0;      // compute threads (0: unrecorded); the last bits
                            // of GEMM sums depend on it
  int64_t accumulate = 1;   // micro-batches per step, over all ranks
  // The model the weights belong to whatever the program (any grid, any
  // split of the batch): a hash of its config and prefix sampling; empty in
  // older state files.
  std::string modelHash;
  int64_t imagesPerStep = 0; // 0: unrecorded (older state files)
};

struct Checkpoint {
  NamedTensors model;
  NamedTensors optimizer;
  RunState state;
};

Status writeCheckpoint(const std::string &runDir, const Checkpoint &checkpoint);

/// Reads and checks a checkpoint: every file present and well-formed, and an
/// exp_avg and exp_avg_sq of the right shape for every parameter.
StatusOr<Checkpoint> readCheckpoint(const std::string &runDir);

} // namespace aim::rt

#endif // AIMC_RUNTIME_CHECKPOINT_H
