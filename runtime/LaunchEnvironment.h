//===- LaunchEnvironment.h - what the job launcher says of this rank -*- C++ -*-===//
//
// How many processes a launcher started and where this one sits among those
// on its node, read from the launcher's environment: Open MPI's mpirun
// (OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK) or Slurm's srun
// (SLURM_STEP_NUM_TASKS, SLURM_LOCALID; not SLURM_NTASKS, which a batch
// script sees without srun). Several processes mean MPI (MpiComm); the local
// rank picks this process's GPU among the node's.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_LAUNCHENVIRONMENT_H
#define AIMC_RUNTIME_LAUNCHENVIRONMENT_H

#include <string>

namespace aim::rt {

struct LaunchEnvironment {
  int processes = 1;   // in the whole job
  int localRank = 0;   // among the processes on this node
  std::string launcher; // "mpirun", "srun", or "" for a process on its own

  /// This process's environment.
  static LaunchEnvironment current();
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_LAUNCHENVIRONMENT_H
