//===- NcclCollectives.cpp - a per-rank program's collectives on GPUs -----===//
#include "runtime/cuda/NcclCollectives.h"

#include "common/CollectiveCall.h"
#include "runtime/cuda/GpuRuntimeCalls.h"

#include <chrono>
#include <cstdio>
#include <thread>

namespace aim::rt {

namespace {
NcclCollectives *installed = nullptr;

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
} // namespace

StatusOr<std::unique_ptr<NcclCollectives>>
NcclCollectives::create(GridCollectives &grid, MpiComm &world) {
  GpuCallState &state = gpuCallState();
  if (!state.driver)
    return Status::error("internal error: NCCL needs the CUDA program loaded");
  StatusOr<std::unique_ptr<Nccl>> nccl = Nccl::open();
  if (!nccl)
    return nccl.status();
  std::unique_ptr<NcclCollectives> c(new NcclCollectives);
  c->nccl = std::move(*nccl);
  c->driver = state.driver;
  c->world = &world;
  c->timeoutSeconds = world.timeout();
  CudaDriver &d = *c->driver;
  if (Status s =
          d.check(d.cuStreamCreate(&c->communication, CU_STREAM_NON_BLOCKING),
                  "creating the collectives' stream");
      !s)
    return s;
  for (CUevent *e : {&c->ready, &c->done})
    if (Status s = d.check(d.cuEventCreate(e, CU_EVENT_DISABLE_TIMING),
                           "creating an event for the collectives");
        !s)
      return s;

  // One communicator per group; the whole grid's only where it is neither.
  const GridPosition &at = grid.position();
  std::vector<std::pair<MpiComm *, std::string>> comms = {
      {&grid.dataParallelGroup(), "dp"}, {&grid.tensorParallelGroup(), "tp"}};
  if (at.dp > 1 && at.tp > 1)
    comms.push_back({&world, "dp x tp"});
  c->wholeGrid = at.dp > 1 && at.tp > 1 ? 2 : at.tp > 1 ? 1 : 0;
  for (auto &[mpi, name] : comms) {
    Group g;
    g.name = name;
    g.size = mpi->size();
    g.index = mpi->rank();
    const std::string what = "creating the NCCL communicator of the " + name +
                             " group (" + std::to_string(g.size) + " ranks)";
    ncclUniqueId id{};
    if (g.index == 0)
      if (Status s = c->nccl->check(c->nccl->ncclGetUniqueId(&id), what); !s)
        return s;
    if (Status s = mpi->broadcast(&id, sizeof id, 0,
                                  "the NCCL id of the " + name + " group");
        !s)
      return s;
    // Non-blocking: no NCCL call waits for the other ranks, so a rank that
    // never comes is noticed by finish()'s timeout, not a hung call.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r =
        c->nccl->ncclCommInitRankConfig(&g.comm, g.size, id, g.index, &config);
    if (r != ncclInProgress)
      if (Status s = c->nccl->check(r, what); !s)
        return s;
    c->groups.push_back(g);
    if (Status s = c->settle(g.comm, what); !s)
      return s;
  }
  installed = c.get();
  state.awaitStream = [p = c.get()](CUstream s) { return p->finish(s); };
  return c;
}

NcclCollectives::~NcclCollectives() {
  if (installed == this) {
    installed = nullptr;
    gpuCallState().awaitStream = nullptr;
  }
  for (Group &g : groups)
    if (g.comm)
      nccl->ncclCommDestroy(g.comm);
  for (auto &[pointer, bytes] : staging)
    driver->cuMemFree(pointer);
  if (ready)
    driver->cuEventDestroy(ready);
  if (done)
    driver->cuEventDestroy(done);
  if (communication)
    driver->cuStreamDestroy(communication);
}

std::string NcclCollectives::description() const {
  std::string out = "NCCL " + nccl->version() + ": communicators of ";
  for (size_t i = 0; i < groups.size(); ++i)
    out += (i ? ", " : "") + std::to_string(groups[i].size) + " (" +
           groups[i].name + ")";
  return out + " ranks";
}

NcclCollectives::Group *NcclCollectives::group(int32_t axes) {
  switch (axes) {
  case 1:
    return &groups[0];
  case 2:
    return &groups[1];
  case 3:
    return &groups[wholeGrid];
  default:
    return nullptr;
  }
}

Status NcclCollectives::settle(ncclComm_t comm, const std::string &what) {
  const Clock::time_point begin = Clock::now();
  while (true) {
    ncclResult_t state = ncclSuccess;
    if (Status s =
            nccl->check(nccl->ncclCommGetAsyncError(comm, &state), what, comm);
        !s)
      return s;
    if (state != ncclInProgress)
      return nccl->check(state, what, comm);
    if (secondsSince(begin) > timeoutSeconds)
      stop("waited " + std::to_string(int(timeoutSeconds)) + " s for " + what);
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclCollectives::stop(const std::string &why) {
  for (Group &g : groups)
    if (g.comm) {
      nccl->ncclCommAbort(g.comm);
      g.comm = nullptr;
    }
  std::fprintf(stderr,
               "aim-run: error: rank %d %s: another rank died or hangs; "
               "stopping every rank (the last checkpoint is kept)\n",
               world->worldRank(), why.c_str());
  std::fflush(stderr);
  world->abortJob();
  std::_Exit(1); // if MPI_Abort itself cannot reach the others
}

void NcclCollectives::issue(int32_t kind, int32_t axes, const float *in,
                            float *out, int64_t inCount, int64_t outCount,
                            CUstream stream) {
  GpuCallState &state = gpuCallState();
  Group *g = group(axes);
  if (!g) {
    state.fail("a collective over grid axes " + std::to_string(axes) +
               " (not dp, tp or both)");
    return;
  }
  const std::string what = "a collective of the step over " + g->name;
  const int64_t ranks = g->size;
  bool shapesAgree = false;
  ncclResult_t r = ncclSuccess;
  switch (static_cast<CollectiveKind>(kind)) {
  case CollectiveKind::AllReduce:
    if ((shapesAgree = inCount == outCount))
      r = nccl->ncclAllReduce(in, out, inCount, ncclFloat32, ncclSum, g->comm,
                              stream);
    break;
  case CollectiveKind::ReduceScatter:
    if ((shapesAgree = inCount == outCount * ranks))
      r = nccl->ncclReduceScatter(in, out, outCount, ncclFloat32, ncclSum,
                                  g->comm, stream);
    break;
  case CollectiveKind::AllGather:
    if ((shapesAgree = outCount == inCount * ranks))
      r = nccl->ncclAllGather(in, out, inCount, ncclFloat32, g->comm, stream);
    break;
  case CollectiveKind::AllSlice:
    // This rank's block: no communication.
    if ((shapesAgree = inCount == outCount * ranks)) {
      Status s = driver->check(
          driver->cuMemcpyDtoDAsync(
              reinterpret_cast<CUdeviceptr>(out),
              reinterpret_cast<CUdeviceptr>(in + g->index * outCount),
              outCount * sizeof(float), stream),
          "copying this rank's block (" + what + ")");
      if (!s)
        state.fail(s.message());
      return;
    }
    break;
  default:
    state.fail("an unknown collective (kind " + std::to_string(kind) + ")");
    return;
  }
  if (!shapesAgree) {
    state.fail("a collective of kind " + std::to_string(kind) + " from " +
               std::to_string(inCount) + " to " + std::to_string(outCount) +
               " elements over " + std::to_string(ranks) +
               " ranks: the artifact and the grid disagree");
    return;
  }
  if (r != ncclSuccess && r != ncclInProgress) {
    state.fail(nccl->check(r, what, g->comm).message());
    return;
  }
  if (Status s = settle(g->comm, what); !s)
    state.fail(s.message());
}

void NcclCollectives::call(int32_t kind, int32_t axes, const float *in,
                           float *out, int64_t inCount, int64_t outCount) {
  if (gpuCallState().ok())
    issue(kind, axes, in, out, inCount, outCount, gpuCallState().stream);
}

void NcclCollectives::start(int32_t kind, int32_t axes, const float *in,
                            float *out, int64_t inCount, int64_t outCount) {
  GpuCallState &state = gpuCallState();
  if (!state.ok())
    return;
  CudaDriver &d = *driver;
  // The step may reuse `in`'s memory before the sum has read it: a copy,
  // in stream order, that the communication stream waits for.
  const size_t bytes = inCount * sizeof(float);
  if (started == staging.size())
    staging.push_back({0, 0});
  auto &[copy, capacity] = staging[started++];
  if (capacity < bytes) {
    if (copy)
      d.cuMemFree(copy);
    copy = 0;
    capacity = 0;
    if (Status s = d.check(d.cuMemAlloc(&copy, bytes),
                           "allocating " + std::to_string(bytes) +
                               " bytes for a started collective's input");
        !s) {
      state.fail(s.message());
      return;
    }
    capacity = bytes;
  }
  for (Status s :
       {d.check(d.cuMemcpyDtoDAsync(copy, reinterpret_cast<CUdeviceptr>(in),
                                    bytes, state.stream),
                "copying a started collective's input"),
        d.check(d.cuEventRecord(ready, state.stream), "cuEventRecord"),
        d.check(d.cuStreamWaitEvent(communication, ready, 0),
                "cuStreamWaitEvent")})
    if (!s) {
      state.fail(s.message());
      return;
    }
  issue(kind, axes, reinterpret_cast<const float *>(copy), out, inCount,
        outCount, communication);
}

void NcclCollectives::waitAll() {
  GpuCallState &state = gpuCallState();
  if (!state.ok() || started == 0)
    return;
  started = 0;
  for (Status s :
       {driver->check(driver->cuEventRecord(done, communication),
                      "cuEventRecord"),
        driver->check(driver->cuStreamWaitEvent(state.stream, done, 0),
                      "cuStreamWaitEvent")})
    if (!s) {
      state.fail(s.message());
      return;
    }
}

Status NcclCollectives::finish(CUstream stream) {
  const Clock::time_point begin = Clock::now();
  while (true) {
    CUresult r = driver->cuStreamQuery(stream);
    if (r == CUDA_SUCCESS)
      return Status::ok();
    if (r != CUDA_ERROR_NOT_READY)
      return driver->check(r, "finishing the step (cuStreamQuery)");
    for (Group &g : groups) {
      ncclResult_t state = ncclSuccess;
      nccl->ncclCommGetAsyncError(g.comm, &state);
      if (state != ncclSuccess && state != ncclInProgress)
        stop("met an NCCL error in a collective over " + g.name + ": " +
             nccl->check(state, "", g.comm).message().substr(2));
    }
    if (secondsSince(begin) > timeoutSeconds)
      stop("waited " + std::to_string(int(timeoutSeconds)) +
           " s for the step's collectives to finish");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

} // namespace aim::rt

namespace {
aim::rt::NcclCollectives *installedOrFail() {
  if (!aim::rt::installed)
    aim::rt::gpuCallState().fail(
        "the artifact's GPU code is a per-rank program (it communicates) but "
        "aim-run set up no NCCL communicators for it");
  return aim::rt::installed;
}
} // namespace

extern "C" void aimcCudaCollective(int32_t kind, int32_t axes, const float *in,
                                   float *out, int64_t inCount,
                                   int64_t outCount) {
  if (aim::rt::NcclCollectives *c = installedOrFail())
    c->call(kind, axes, in, out, inCount, outCount);
}

extern "C" void aimcCudaCollectiveStart(int32_t kind, int32_t axes,
                                        const float *in, float *out,
                                        int64_t inCount, int64_t outCount) {
  if (aim::rt::NcclCollectives *c = installedOrFail())
    c->start(kind, axes, in, out, inCount, outCount);
}

extern "C" void aimcCudaCollectivesWait() {
  if (aim::rt::NcclCollectives *c = installedOrFail())
    c->waitAll();
}
