//===- ShardedRun.h - training a per-rank program on its grid ---*- C++ -*-===//
//
// An artifact compiled with `aimc --mesh dp=D,tp=T` is the program of one
// rank (docs/distributed.md). Each rank holds its part of every parameter
// and moment; checkpoints hold whole tensors, so a run starts from whole
// tensors cut into this rank's parts, and a checkpoint is the parts of every
// rank put back together.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_TOOLS_AIM_RUN_SHARDEDRUN_H
#define AIMC_TOOLS_AIM_RUN_SHARDEDRUN_H

#include "common/Safetensors.h"
#include "common/Sharding.h"
#include "runtime/Artifact.h"
#include "runtime/GridCollectives.h"
#include "runtime/Program.h"
#include "runtime/cuda/NcclCollectives.h"

#include <map>
#include <memory>

namespace aim::rt {

class ShardedRun {
public:
  /// The grid of `artifact` over `world` and its collectives, installed for
  /// the artifact's code; null when the artifact is the whole step. On
  /// `device` cuda (the program loaded) the GPU code's collectives run with
  /// NCCL.
  static StatusOr<std::unique_ptr<ShardedRun>>
  open(const Artifact &artifact, MpiComm &world, DeviceKind device);
  ~ShardedRun();

  const GridPosition &position() const { return grid->position(); }
  /// How the GPU code communicates; "" on the host.
  std::string gpuCollectives() const {
    return gpu ? gpu->description() : std::string();
  }
  MpiComm &dataParallelGroup() const { return grid->dataParallelGroup(); }

  /// Replaces each whole tensor by this rank's part (names as @train_step's
  /// parameters and optimiser state).
  Status cut(NamedTensors &tensors) const;

  /// The whole tensors, from every rank's parts (every rank calls it).
  StatusOr<NamedTensors> assemble(const NamedTensors &parts) const;

private:
  ShardedRun() = default;
  MpiComm *world = nullptr;
  std::unique_ptr<GridCollectives> grid;
  std::unique_ptr<NcclCollectives> gpu; // after grid: it uses grid's groups
  std::map<std::string, TensorSharding> shardings;
};

} // namespace aim::rt

#endif // AIMC_TOOLS_AIM_RUN_SHARDEDRUN_H
