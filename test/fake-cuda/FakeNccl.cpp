//===- FakeNccl.cpp - NCCL without a GPU, for tests -----------------------===//
//
// libfakenccl.so stands in for libnccl.so.2 (AIMC_NCCL=...) beside the fake
// driver, whose "device" memory is host memory: each collective is done at
// once with MPI on that memory, so aim-run's NCCL path -- communicators from
// ids sent over MPI, non-blocking mode, the collectives of a per-rank
// program, started ones on their own stream, the timeout and abort -- runs
// in CI under mpirun. Without mpirun (MPI not initialised) a communicator
// has one rank and a collective is a copy.
//
// Like real NCCL in non-blocking mode, a collective answers ncclInProgress
// and ncclCommGetAsyncError says when it is done (here: when MPI's request
// completes). Communicators are made with MPI_Comm_split of the world, so
// every rank must create its communicators in the same order -- as aim-run
// does.
//
//   FAKE_NCCL_LOG=FILE        one line per collective; "%r" in FILE is
//                             the rank mpirun numbered
//   FAKE_NCCL_HANG_AFTER=N    the collectives after the N-th never start
//   FAKE_NCCL_HANG_RANK=R     ... on rank R only (a hung rank, for the
//                             timeout; default: every rank)
//
//===----------------------------------------------------------------------===//
#define OMPI_SKIP_MPICXX 1 // the C API only
#include <mpi.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

struct ncclComm {
  MPI_Comm comm = MPI_COMM_NULL; // MPI_COMM_NULL: one rank, without MPI
  int size = 1, rank = 0;
  bool blocking = true;
  MPI_Request pending = MPI_REQUEST_NULL;
  bool hung = false;
};

namespace {

struct Fake {
  std::FILE *log = nullptr;
  long collectives = 0, hangAfter = -1;
  std::string lastError;
  Fake() {
    const char *rankText = std::getenv("OMPI_COMM_WORLD_RANK");
    const std::string rank = rankText ? rankText : "0";
    if (const char *given = std::getenv("FAKE_NCCL_LOG")) {
      std::string path = given;
      if (size_t at = path.find("%r"); at != std::string::npos)
        path.replace(at, 2, rank);
      log = std::fopen(path.c_str(), "w");
    }
    const char *hangRank = std::getenv("FAKE_NCCL_HANG_RANK");
    if (const char *n = std::getenv("FAKE_NCCL_HANG_AFTER"))
      if (!hangRank || rank == hangRank)
        hangAfter = std::atol(n);
  }
  ~Fake() {
    if (log)
      std::fclose(log);
  }
};
Fake &fake() {
  static Fake f;
  return f;
}

bool mpiRunning() {
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  return initialised && !finalised;
}

ncclResult_t invalid(const std::string &why) {
  fake().lastError = why;
  return ncclInvalidArgument;
}

/// Starts one collective on `comm` (float32 sums only): `start` issues the
/// MPI call, `alone` does it for a communicator of one rank.
template <typename Start, typename Alone>
ncclResult_t collective(ncclComm_t comm, const char *what, size_t count,
                        ncclDataType_t type, Start start, Alone alone) {
  Fake &f = fake();
  if (!comm)
    return invalid("no communicator");
  if (type != ncclFloat32)
    return invalid("the fake sums float32 only");
  if (comm->pending != MPI_REQUEST_NULL || comm->hung)
    return invalid("a collective issued while the last is in progress");
  ++f.collectives;
  if (f.log) {
    std::fprintf(f.log, "%s %zu floats over %d ranks\n", what, count,
                 comm->size);
    std::fflush(f.log);
  }
  if (f.hangAfter >= 0 && f.collectives > f.hangAfter) {
    comm->hung = true;
    return ncclInProgress;
  }
  if (comm->comm == MPI_COMM_NULL) {
    alone();
    return ncclSuccess;
  }
  if (start(&comm->pending) != MPI_SUCCESS)
    return ncclSystemError;
  if (comm->blocking) {
    MPI_Wait(&comm->pending, MPI_STATUS_IGNORE);
    return ncclSuccess;
  }
  return ncclInProgress;
}

} // namespace

extern "C" {

ncclResult_t ncclGetVersion(int *version) {
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t result) {
  switch (result) {
  case ncclSuccess:
    return "no error";
  case ncclInvalidArgument:
    return "invalid argument";
  case ncclSystemError:
    return "unhandled system error";
  case ncclInProgress:
    return "operation in progress";
  default:
    return "unknown result code";
  }
}

const char *ncclGetLastError(ncclComm_t) { return fake().lastError.c_str(); }

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  static long drawn = 0;
  std::memset(id, 0, sizeof *id);
  std::snprintf(id->internal, sizeof id->internal, "fake-%d-%ld",
                static_cast<int>(getpid()), ++drawn);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *out, int nranks,
                                    ncclUniqueId id, int rank,
                                    ncclConfig_t *config) {
  auto *comm = new ncclComm;
  comm->blocking = !config || config->blocking != 0;
  if (mpiRunning()) {
    // Every rank of the world splits it: those with the same id meet.
    unsigned color = 2166136261u; // FNV-1a of the id
    for (char c : id.internal)
      color = (color ^ static_cast<unsigned char>(c)) * 16777619u;
    MPI_Comm_split(MPI_COMM_WORLD, static_cast<int>(color & 0x7fffffff), rank,
                   &comm->comm);
    MPI_Comm_size(comm->comm, &comm->size);
    MPI_Comm_rank(comm->comm, &comm->rank);
  }
  if (comm->size != nranks || comm->rank != rank) {
    std::string why = "rank " + std::to_string(rank) + " of " +
                      std::to_string(nranks) + " met " +
                      std::to_string(comm->size) + " ranks with this id";
    delete comm;
    return invalid(why);
  }
  *out = comm;
  return comm->blocking ? ncclSuccess : ncclInProgress;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *state) {
  if (comm->hung) {
    *state = ncclInProgress;
    return ncclSuccess;
  }
  int done = 1;
  if (comm->pending != MPI_REQUEST_NULL)
    MPI_Test(&comm->pending, &done, MPI_STATUS_IGNORE);
  *state = done ? ncclSuccess : ncclInProgress;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  delete comm; // its MPI request is left: the job is stopping
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm->comm != MPI_COMM_NULL && mpiRunning())
    MPI_Comm_free(&comm->comm);
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *in, void *out, size_t count,
                           ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t) {
  if (op != ncclSum)
    return invalid("the fake sums only");
  return collective(
      comm, "allreduce", count, type,
      [&](MPI_Request *r) {
        return MPI_Iallreduce(in == out ? MPI_IN_PLACE : in, out, int(count),
                              MPI_FLOAT, MPI_SUM, comm->comm, r);
      },
      [&] { std::memmove(out, in, count * sizeof(float)); });
}

ncclResult_t ncclReduceScatter(const void *in, void *out, size_t count,
                               ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t) {
  if (op != ncclSum)
    return invalid("the fake sums only");
  return collective(
      comm, "reducescatter", count, type,
      [&](MPI_Request *r) {
        return MPI_Ireduce_scatter_block(in, out, int(count), MPI_FLOAT,
                                         MPI_SUM, comm->comm, r);
      },
      [&] { std::memmove(out, in, count * sizeof(float)); });
}

ncclResult_t ncclAllGather(const void *in, void *out, size_t count,
                           ncclDataType_t type, ncclComm_t comm, cudaStream_t) {
  return collective(
      comm, "allgather", count, type,
      [&](MPI_Request *r) {
        return MPI_Iallgather(in, int(count), MPI_FLOAT, out, int(count),
                              MPI_FLOAT, comm->comm, r);
      },
      [&] { std::memmove(out, in, count * sizeof(float)); });
}

} // extern "C"
