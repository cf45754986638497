//===- MpiComm.cpp - ranks and sums across processes, MPI by dlopen -------===//
#include "runtime/MpiComm.h"

#include "runtime/LaunchEnvironment.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <mutex>
#include <string>
#include <thread>

namespace aim::rt {

StatusOr<MpiComm *> MpiComm::world() {
  static std::unique_ptr<MpiComm> world;
  if (world)
    return world.get();
  std::unique_ptr<MpiComm> comm(new MpiComm);
  LaunchEnvironment launch = LaunchEnvironment::current();
  if (launch.processes <= 1) {
    world = std::move(comm);
    return world.get();
  }
  std::string size = std::to_string(launch.processes);
  const char *override = std::getenv("AIMC_MPI");
  std::string path = override && *override ? override : "libmpi.so.40";
  // RTLD_GLOBAL: Open MPI opens its own components, which look for its
  // symbols in the global scope.
  comm->library = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!comm->library)
    return Status::error("launched by " + launch.launcher + " with " + size +
                         " ranks, but Open MPI's library cannot be loaded (" +
                         path + "): " + dlerror());
  auto symbol = [&](const char *name) { return dlsym(comm->library, name); };
  // Serialized: a per-rank program's collectives run on a communication
  // thread (GridCollectives.h), the run's own sums on the main thread, never
  // both at once.
  auto initThread = reinterpret_cast<int (*)(int *, char ***, int, int *)>(
      symbol("MPI_Init_thread"));
  constexpr int kThreadSerialized = 2; // MPI_THREAD_SERIALIZED in Open MPI
  auto rank = reinterpret_cast<int (*)(void *, int *)>(symbol("MPI_Comm_rank"));
  auto sizeOf =
      reinterpret_cast<int (*)(void *, int *)>(symbol("MPI_Comm_size"));
  comm->allreduce =
      reinterpret_cast<int (*)(const void *, void *, int, void *, void *,
                               void *)>(symbol("MPI_Allreduce"));
  comm->reduceScatterBlock =
      reinterpret_cast<int (*)(const void *, void *, int, void *, void *,
                               void *)>(symbol("MPI_Reduce_scatter_block"));
  comm->allgather =
      reinterpret_cast<int (*)(const void *, int, void *, void *, int, void *,
                               void *)>(symbol("MPI_Allgather"));
  comm->commSplit = reinterpret_cast<int (*)(void *, int, int, void **)>(
      symbol("MPI_Comm_split"));
  comm->bcast = reinterpret_cast<int (*)(void *, int, void *, int, void *)>(
      symbol("MPI_Bcast"));
  comm->finalize = reinterpret_cast<int (*)()>(symbol("MPI_Finalize"));
  comm->abort = reinterpret_cast<int (*)(void *, int)>(symbol("MPI_Abort"));
  comm->commWorld = symbol("ompi_mpi_comm_world");
  comm->doubleType = symbol("ompi_mpi_double");
  comm->floatType = symbol("ompi_mpi_float");
  comm->byteType = symbol("ompi_mpi_byte");
  comm->sumOp = symbol("ompi_mpi_op_sum");
  comm->comm = comm->commWorld;
  comm->ownsMpi = true;
  if (!initThread || !rank || !sizeOf || !comm->allreduce ||
      !comm->reduceScatterBlock || !comm->allgather || !comm->commSplit ||
      !comm->bcast || !comm->byteType || !comm->finalize || !comm->abort ||
      !comm->commWorld || !comm->doubleType || !comm->floatType || !comm->sumOp)
    return Status::error(path + " is not Open MPI (its MPI_COMM_WORLD, "
                                "MPI_DOUBLE, MPI_FLOAT or MPI_SUM objects or "
                                "its collectives are missing)");
  int provided = 0;
  if (initThread(nullptr, nullptr, kThreadSerialized, &provided) != 0)
    return Status::error("MPI_Init_thread failed");
  if (provided < kThreadSerialized)
    return Status::error("this Open MPI cannot be called from several "
                         "threads in turn (MPI_THREAD_SERIALIZED)");
  rank(comm->commWorld, &comm->rankIndex);
  sizeOf(comm->commWorld, &comm->worldSize);
  comm->worldRankIndex = comm->rankIndex;
  if (comm->worldSize != launch.processes)
    return Status::error(launch.launcher + " started " + size +
                         " processes but MPI sees a world of " +
                         std::to_string(comm->worldSize) +
                         " (an Open MPI without " + launch.launcher +
                         " support?)");
  world = std::move(comm);
  return world.get();
}

Status MpiComm::guarded(const std::string &what,
                        const std::function<bool()> &collective) {
  // A watchdog for this collective: MPI has no timeout of its own.
  std::mutex mutex;
  std::condition_variable done;
  bool finished = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(mutex);
    if (done.wait_for(lock, std::chrono::duration<double>(timeoutSeconds),
                      [&] { return finished; }))
      return;
    std::fprintf(stderr,
                 "aim-run: error: rank %d waited %.0f s for %s: another rank "
                 "died or hangs; stopping every rank (the last checkpoint is "
                 "kept)\n",
                 worldRankIndex, timeoutSeconds, what.c_str());
    std::fflush(stderr);
    abort(commWorld, 1);
    std::_Exit(1); // if MPI_Abort itself cannot reach the others
  });
  bool ok = collective();
  {
    std::lock_guard<std::mutex> lock(mutex);
    finished = true;
  }
  done.notify_one();
  watchdog.join();
  return ok ? Status::ok() : Status::error("MPI failed during " + what);
}

Status MpiComm::sum(std::vector<double> &values, const std::string &what) {
  if (worldSize == 1)
    return Status::ok();
  return guarded(what, [&] {
    constexpr size_t kChunk = 1 << 28; // MPI counts are ints
    bool ok = true;
    for (size_t first = 0; ok && first < values.size(); first += kChunk) {
      int count = static_cast<int>(std::min(kChunk, values.size() - first));
      // MPI_IN_PLACE is (void *) 1 in Open MPI.
      ok = allreduce(reinterpret_cast<const void *>(1), values.data() + first,
                     count, doubleType, sumOp, comm) == 0;
    }
    return ok;
  });
}

namespace {
/// MPI counts are ints: a collective of more elements is refused.
Status checkCount(int64_t count, const std::string &what) {
  if (count < 0 || count > (int64_t(1) << 30))
    return Status::error(what + ": " + std::to_string(count) +
                         " elements in one collective are more than MPI "
                         "counts (2^30)");
  return Status::ok();
}
} // namespace

Status MpiComm::floatCollective(const float *in, float *out,
                                int64_t ownCount, int64_t totalCount,
                                const std::string &what,
                                const std::function<int(int)> &collective) {
  if (worldSize == 1) { // this rank's part is the whole
    std::copy_n(in, ownCount, out);
    return Status::ok();
  }
  if (Status s = checkCount(totalCount, what); !s)
    return s;
  return guarded(what, [&] {
    return collective(static_cast<int>(ownCount)) == 0;
  });
}

Status MpiComm::allReduce(const float *in, float *out, int64_t count,
                          const std::string &what) {
  return floatCollective(in, out, count, count, what, [&](int n) {
    return allreduce(in, out, n, floatType, sumOp, comm);
  });
}

Status MpiComm::reduceScatter(const float *in, float *out, int64_t outCount,
                              const std::string &what) {
  return floatCollective(in, out, outCount, outCount * worldSize, what,
                         [&](int n) {
                           return reduceScatterBlock(in, out, n, floatType,
                                                     sumOp, comm);
                         });
}

Status MpiComm::allGather(const float *in, float *out, int64_t inCount,
                          const std::string &what) {
  return floatCollective(
      in, out, inCount, inCount * worldSize, what, [&](int n) {
        return allgather(in, n, floatType, out, n, floatType, comm);
      });
}

Status MpiComm::broadcast(void *data, int64_t bytes, int root,
                          const std::string &what) {
  if (worldSize == 1)
    return Status::ok();
  if (Status s = checkCount(bytes, what); !s)
    return s;
  return guarded(what, [&] {
    return bcast(data, static_cast<int>(bytes), byteType, root, comm) == 0;
  });
}

void MpiComm::abortJob() {
  if (abort && commWorld)
    abort(commWorld, 1);
}

StatusOr<std::unique_ptr<MpiComm>> MpiComm::split(int color, int key) {
  std::unique_ptr<MpiComm> part(new MpiComm(*this));
  part->ownsMpi = false;
  if (worldSize == 1)
    return part;
  void *newComm = nullptr;
  if (commSplit(comm, color, key, &newComm) != 0)
    return Status::error("MPI_Comm_split failed");
  part->comm = newComm;
  auto rank = reinterpret_cast<int (*)(void *, int *)>(
      dlsym(library, "MPI_Comm_rank"));
  auto sizeOf = reinterpret_cast<int (*)(void *, int *)>(
      dlsym(library, "MPI_Comm_size"));
  rank(newComm, &part->rankIndex);
  sizeOf(newComm, &part->worldSize);
  return part;
}

MpiComm::~MpiComm() {
  if (ownsMpi && finalize)
    finalize();
}

} // namespace aim::rt
