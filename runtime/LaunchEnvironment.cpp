//===- LaunchEnvironment.cpp - what the job launcher says of this rank ----===//
#include "runtime/LaunchEnvironment.h"

#include <cstdlib>

namespace aim::rt {

namespace {
/// A positive count or a non-negative index from the environment, or -1.
int number(const char *name) {
  const char *text = std::getenv(name);
  if (!text || !*text)
    return -1;
  char *end = nullptr;
  long value = std::strtol(text, &end, 10);
  return *end || value < 0 || value > 1 << 24 ? -1 : static_cast<int>(value);
}
} // namespace

LaunchEnvironment LaunchEnvironment::current() {
  LaunchEnvironment env;
  struct Launcher {
    const char *name, *size, *localRank;
  };
  for (Launcher l : {Launcher{"mpirun", "OMPI_COMM_WORLD_SIZE",
                              "OMPI_COMM_WORLD_LOCAL_RANK"},
                     Launcher{"srun", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"}}) {
    int size = number(l.size);
    if (size < 1)
      continue;
    env.processes = size;
    env.localRank = number(l.localRank) > 0 ? number(l.localRank) : 0;
    env.launcher = l.name;
    break;
  }
  return env;
}

} // namespace aim::rt
