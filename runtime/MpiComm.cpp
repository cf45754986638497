//===- MpiComm.cpp - ranks and sums across processes, MPI by dlopen -------===//
#include "runtime/MpiComm.h"

#include <cstdlib>
#include <dlfcn.h>
#include <string>

namespace aim::rt {

StatusOr<MpiComm *> MpiComm::world() {
  static std::unique_ptr<MpiComm> world;
  if (world)
    return world.get();
  std::unique_ptr<MpiComm> comm(new MpiComm);
  const char *size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!size || std::atoi(size) <= 1) {
    world = std::move(comm);
    return world.get();
  }
  const char *override = std::getenv("AIMC_MPI");
  std::string path = override && *override ? override : "libmpi.so.40";
  // RTLD_GLOBAL: Open MPI opens its own components, which look for its
  // symbols in the global scope.
  comm->library = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!comm->library)
    return Status::error("launched by mpirun with " + std::string(size) +
                         " ranks, but Open MPI's library cannot be loaded (" +
                         path + "): " + dlerror());
  auto symbol = [&](const char *name) { return dlsym(comm->library, name); };
  auto init = reinterpret_cast<int (*)(int *, char ***)>(symbol("MPI_Init"));
  auto rank = reinterpret_cast<int (*)(void *, int *)>(symbol("MPI_Comm_rank"));
  auto sizeOf =
      reinterpret_cast<int (*)(void *, int *)>(symbol("MPI_Comm_size"));
  comm->allreduce =
      reinterpret_cast<int (*)(const void *, void *, int, void *, void *,
                               void *)>(symbol("MPI_Allreduce"));
  comm->finalize = reinterpret_cast<int (*)()>(symbol("MPI_Finalize"));
  comm->commWorld = symbol("ompi_mpi_comm_world");
  comm->doubleType = symbol("ompi_mpi_double");
  comm->sumOp = symbol("ompi_mpi_op_sum");
  if (!init || !rank || !sizeOf || !comm->allreduce || !comm->finalize ||
      !comm->commWorld || !comm->doubleType || !comm->sumOp)
    return Status::error(path + " is not Open MPI (its MPI_COMM_WORLD, "
                                "MPI_DOUBLE or MPI_SUM objects are missing)");
  if (init(nullptr, nullptr) != 0)
    return Status::error("MPI_Init failed");
  rank(comm->commWorld, &comm->rankIndex);
  sizeOf(comm->commWorld, &comm->worldSize);
  world = std::move(comm);
  return world.get();
}

Status MpiComm::sum(std::vector<double> &values) {
  if (worldSize == 1)
    return Status::ok();
  constexpr size_t kChunk = 1 << 28; // MPI counts are ints
  for (size_t first = 0; first < values.size(); first += kChunk) {
    int count = static_cast<int>(std::min(kChunk, values.size() - first));
    // MPI_IN_PLACE is (void *) 1 in Open MPI.
    if (allreduce(reinterpret_cast<const void *>(1), values.data() + first,
                  count, doubleType, sumOp, commWorld) != 0)
      return Status::error("MPI_Allreduce of the gradients failed");
  }
  return Status::ok();
}

MpiComm::~MpiComm() {
  if (finalize)
    finalize();
}

} // namespace aim::rt
