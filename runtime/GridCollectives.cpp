//===- GridCollectives.cpp - the collectives of a per-rank program --------===//
#include "runtime/GridCollectives.h"

#include "common/CollectiveCall.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace aim::rt {

namespace {
GridCollectives *installed = nullptr;
} // namespace

StatusOr<std::unique_ptr<GridCollectives>>
GridCollectives::create(MpiComm &world, int64_t dp, int64_t tp) {
  if (world.size() != dp * tp)
    return Status::error(
        "the artifact is the program of one rank of a dp=" +
        std::to_string(dp) + " x tp=" + std::to_string(tp) + " grid: run it "
        "on " + std::to_string(dp * tp) + " ranks (mpirun -np " +
        std::to_string(dp * tp) + "), not " + std::to_string(world.size()));
  std::unique_ptr<GridCollectives> grid(new GridCollectives);
  grid->world = &world;
  grid->at = GridPosition::ofRank(world.rank(), dp, tp);
  // The dp group: the ranks with this tp index, ordered by dp index; the tp
  // group likewise.
  auto dpGroup = world.split(static_cast<int>(grid->at.t),
                             static_cast<int>(grid->at.d));
  if (!dpGroup)
    return dpGroup.status();
  auto tpGroup = world.split(static_cast<int>(grid->at.d),
                             static_cast<int>(grid->at.t));
  if (!tpGroup)
    return tpGroup.status();
  grid->dataParallel = std::move(*dpGroup);
  grid->tensorParallel = std::move(*tpGroup);
  grid->thread = std::thread([g = grid.get()] { g->communicate(); });
  return grid;
}

GridCollectives::~GridCollectives() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  changed.notify_all();
  if (thread.joinable())
    thread.join();
}

void GridCollectives::communicate() {
  std::unique_lock<std::mutex> lock(mutex);
  while (true) {
    changed.wait(lock, [&] { return stopping || !queue.empty(); });
    if (queue.empty())
      return;
    Task task = std::move(queue.front());
    queue.pop_front();
    lock.unlock();
    Status s = run(task);
    lock.lock();
    if (!s && firstError.ok())
      firstError = s;
    ++finished;
    changed.notify_all();
  }
}

Status GridCollectives::enqueue(Task task, bool wait) {
  std::unique_lock<std::mutex> lock(mutex);
  queue.push_back(std::move(task));
  const int64_t ticket = ++issued;
  changed.notify_all();
  if (!wait)
    return Status::ok();
  changed.wait(lock, [&] { return finished >= ticket; });
  return firstError;
}

Status GridCollectives::call(int32_t kind, int32_t axes, const float *in,
                             float *out, int64_t inCount, int64_t outCount) {
  return enqueue({kind, axes, {}, in, out, inCount, outCount}, /*wait=*/true);
}

void GridCollectives::start(int32_t kind, int32_t axes, const float *in,
                            float *out, int64_t inCount, int64_t outCount) {
  // The step may reuse `in`'s memory before the collective runs.
  Task task{kind, axes, std::vector<float>(in, in + inCount), nullptr, out,
            inCount, outCount};
  task.in = task.copy.data(); // moving the vector keeps its buffer
  enqueue(std::move(task), /*wait=*/false);
}

Status GridCollectives::waitAll() {
  std::unique_lock<std::mutex> lock(mutex);
  changed.wait(lock, [&] { return finished >= issued; });
  return firstError;
}

std::pair<MpiComm *, int64_t> GridCollectives::group(int32_t axes) {
  switch (axes) {
  case 1:
    return {dataParallel.get(), at.d};
  case 2:
    return {tensorParallel.get(), at.t};
  case 3:
    return {world, at.d * at.tp + at.t};
  default:
    return {nullptr, 0};
  }
}

Status GridCollectives::run(const Task &task) {
  const int32_t kind = task.kind, axes = task.axes;
  const float *in = task.in;
  float *out = task.out;
  const int64_t inCount = task.inCount, outCount = task.outCount;
  auto [comm, index] = group(axes);
  if (!comm)
    return Status::error("a collective over grid axes " +
                         std::to_string(axes) + " (not dp, tp or both)");
  const std::string what =
      "a collective of the step over " +
      std::string(axes == 1 ? "dp" : axes == 2 ? "tp" : "the grid");
  const int64_t ranks = comm->size();
  switch (static_cast<CollectiveKind>(kind)) {
  case CollectiveKind::AllReduce:
    if (inCount != outCount)
      break;
    return comm->allReduce(in, out, inCount, what);
  case CollectiveKind::ReduceScatter:
    if (inCount != outCount * ranks)
      break;
    return comm->reduceScatter(in, out, outCount, what);
  case CollectiveKind::AllGather:
    if (outCount != inCount * ranks)
      break;
    return comm->allGather(in, out, inCount, what);
  case CollectiveKind::AllSlice:
    if (inCount != outCount * ranks)
      break;
    std::copy_n(in + index * outCount, outCount, out);
    return Status::ok();
  default:
    return Status::error("an unknown collective (kind " +
                         std::to_string(kind) + ")");
  }
  return Status::error("a collective of kind " + std::to_string(kind) +
                       " from " + std::to_string(inCount) + " to " +
                       std::to_string(outCount) + " elements over " +
                       std::to_string(ranks) +
                       " ranks: the artifact and the grid disagree");
}

void GridCollectives::install(GridCollectives *grid) { installed = grid; }

} // namespace aim::rt

namespace {
/// What an artifact's host code calls cannot take an error back: one ends
/// the process (mpirun then stops the job).
void exitOnError(const aim::Status &s) {
  if (s)
    return;
  std::fprintf(stderr, "aim-run: error: %s\n", s.message().c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

aim::rt::GridCollectives &installedGrid() {
  if (!aim::rt::installed)
    exitOnError(aim::Status::error(
        "the artifact is a per-rank program (it communicates) but aim-run set "
        "up no grid for it"));
  return *aim::rt::installed;
}
} // namespace

extern "C" void aimcCollective(int32_t kind, int32_t axes, const float *in,
                               float *out, int64_t inCount,
                               int64_t outCount) {
  exitOnError(installedGrid().call(kind, axes, in, out, inCount, outCount));
}

extern "C" void aimcCollectiveStart(int32_t kind, int32_t axes,
                                    const float *in, float *out,
                                    int64_t inCount, int64_t outCount) {
  installedGrid().start(kind, axes, in, out, inCount, outCount);
}

extern "C" void aimcCollectivesWait() { exitOnError(installedGrid().waitAll()); }
