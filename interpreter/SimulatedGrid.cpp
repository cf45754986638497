//===- SimulatedGrid.cpp - every rank of a per-rank program at once -------===//
#include "interpreter/SimulatedGrid.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

using namespace aim;
using namespace aim::interp;

namespace {

/// The rendezvous of the collectives of all ranks.
class Grid {
public:
  explicit Grid(llvm::ArrayRef<int64_t> shape) : shape(shape) {}

  std::vector<int64_t> coordinates(int64_t rank) const {
    std::vector<int64_t> c(shape.size());
    for (size_t a = shape.size(); a-- > 0;) {
      c[a] = rank % shape[a];
      rank /= shape[a];
    }
    return c;
  }

  /// Rank at `coords` contributes to its `sequence`-th collective over
  /// `axes`; waits for the rest of its group.
  llvm::Expected<std::vector<std::vector<double>>>
  exchange(const std::vector<int64_t> &coords, llvm::ArrayRef<int16_t> axes,
           int64_t sequence, std::vector<double> part) {
    auto [index, size] = position(coords, axes);
    // The group: the coordinates on the other axes (and which axes).
    std::vector<int64_t> group(coords);
    for (int16_t a : axes)
      group[a] = -1;
    std::unique_lock<std::mutex> lock(mutex);
    Round &round = rounds[{group, sequence}];
    if (round.parts.empty()) {
      round.parts.resize(size);
      round.waiting = size;
    }
    round.parts[index] = std::move(part);
    ++round.arrived;
    changed.notify_all();
    changed.wait(lock, [&] { return round.arrived == size || failed; });
    if (failed)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "stopped: another rank of the grid failed");
    std::vector<std::vector<double>> parts = round.parts;
    if (--round.waiting == 0)
      rounds.erase({group, sequence});
    return parts;
  }

  std::pair<int64_t, int64_t> position(const std::vector<int64_t> &coords,
                                       llvm::ArrayRef<int16_t> axes) const {
    int64_t index = 0, size = 1;
    for (int16_t a : axes) {
      index = index * shape[a] + coords[a];
      size *= shape[a];
    }
    return {index, size};
  }

  void fail() {
    std::lock_guard<std::mutex> lock(mutex);
    failed = true;
    changed.notify_all();
  }

private:
  struct Round {
    std::vector<std::vector<double>> parts;
    int64_t arrived = 0, waiting = 0;
  };
  std::vector<int64_t> shape;
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::pair<std::vector<int64_t>, int64_t>, Round> rounds;
  bool failed = false;
};

/// One rank's view of the grid.
class RankCollectives : public Collectives {
public:
  RankCollectives(Grid &grid, int64_t rank)
      : grid(grid), coords(grid.coordinates(rank)) {}

  llvm::Expected<std::vector<std::vector<double>>>
  exchange(llvm::ArrayRef<int16_t> axes, std::vector<double> part) override {
    // Every rank runs the same program, so its n-th collective is every
    // other rank's n-th.
    return grid.exchange(coords, axes, calls++, std::move(part));
  }
  std::pair<int64_t, int64_t>
  groupPosition(llvm::ArrayRef<int16_t> axes) const override {
    return grid.position(coords, axes);
  }

private:
  Grid &grid;
  std::vector<int64_t> coords;
  int64_t calls = 0;
};

} // namespace

llvm::Expected<std::vector<std::vector<HostTensor>>>
aim::interp::runOnGrid(mlir::func::FuncOp function,
                       llvm::ArrayRef<int64_t> gridShape,
                       const std::vector<std::vector<HostTensor>> &arguments,
                       const Options &options) {
  int64_t ranks = 1;
  for (int64_t extent : gridShape)
    ranks *= extent;
  if (static_cast<int64_t>(arguments.size()) != ranks)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "a grid of %lld ranks needs one argument list per rank, got %zu",
        static_cast<long long>(ranks), arguments.size());
  Grid grid(gridShape);
  std::vector<std::vector<HostTensor>> results(ranks);
  std::vector<std::string> errors(ranks);
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      RankCollectives collectives(grid, r);
      Options rankOptions = options;
      rankOptions.collectives = &collectives;
      auto out = runFunction(function, arguments[r], rankOptions);
      if (out) {
        results[r] = std::move(*out);
        return;
      }
      errors[r] = llvm::toString(out.takeError());
      grid.fail();
    });
  for (std::thread &t : threads)
    t.join();
  // The first rank that failed on its own, not because another did.
  for (int64_t r = 0; r < ranks; ++r)
    if (!errors[r].empty() && errors[r].find("stopped:") == std::string::npos)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "rank %lld: %s",
                                     static_cast<long long>(r),
                                     errors[r].c_str());
  for (int64_t r = 0; r < ranks; ++r)
    if (!errors[r].empty())
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "rank %lld: %s",
                                     static_cast<long long>(r),
                                     errors[r].c_str());
  return results;
}
