//===- MemoryPool.h - reuse of device allocations by size -------*- C++ -*-===//
//
// The launcher code allocates each temporary of a step when it needs it and
// frees it after its last use, the same sizes in the same order every step.
// The pool keeps freed blocks by size and hands them out again, so a step
// after the first allocates nothing from the driver (whose allocation calls
// are slow and synchronising).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CUDA_MEMORYPOOL_H
#define AIMC_RUNTIME_CUDA_MEMORYPOOL_H

#include <cstddef>
#include <functional>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace aim::rt {

/// The blocks of one recorded call, placed in one arena: blocks whose
/// lifetimes overlap do not overlap in memory.
struct ArenaPlan {
  std::vector<size_t> sizes;   // in the order the call asked for them
  std::vector<size_t> offsets; // in the arena (multiples of 256)
  size_t bytes = 0;            // the arena's size
  size_t peakLive = 0; // the most bytes alive at one time: bytes' lower bound
};

/// Places blocks of `sizes` alive over event intervals [starts[i],
/// ends[i]) in one arena, largest first, each at the lowest offset free for
/// its whole lifetime (greedy by size, as TFLite's and XLA's planners do).
ArenaPlan placeInArena(const std::vector<size_t> &sizes,
                       const std::vector<size_t> &starts,
                       const std::vector<size_t> &ends);

class MemoryPool {
public:
  /// `allocate` returns nullptr when out of memory; `release` frees.
  MemoryPool(std::function<void *(size_t)> allocate,
             std::function<void(void *)> release)
      : allocate(std::move(allocate)), release(std::move(release)) {}
  /// Blocks still handed out are not freed: the driver frees them with its
  /// context.
  ~MemoryPool() { trim(); }
  MemoryPool(const MemoryPool &) = delete;
  MemoryPool &operator=(const MemoryPool &) = delete;

  /// A block of at least `bytes` (rounded up to 256); nullptr when the
  /// device is out of memory even after the free blocks were returned.
  void *get(size_t bytes);
  /// Back to the pool; false if `block` did not come from it.
  bool put(void *block);
  /// Returns every free block to the driver.
  void trim();
  /// Whether an allocation that fails may trim first. Off once a CUDA graph
  /// holds the addresses of free blocks (it reuses them when replayed).
  void setTrimOnFailure(bool on) { trimOnFailure = on; }

  /// Records the sizes and lifetimes of the blocks handed out until
  /// finishRecording (one call of an entry point).
  void startRecording();
  /// The recorded blocks placed in one arena (placeInArena).
  ArenaPlan finishRecording();
  /// Hands out `arena` + the plan's offsets for the next gets while they
  /// ask for the plan's sizes in its order; the first that does not ends
  /// it (that and later gets come from the pool, as before). The arena
  /// stays the caller's.
  void serve(char *arena, const ArenaPlan &plan);
  /// Ends serving; whether every get since serve() came from the arena.
  bool stopServing();

  size_t bytesInUse() const { return inUse; }
  size_t bytesHeld() const { return held; }
  size_t driverAllocations() const { return allocations; }

private:
  void *getFromPool(size_t size);

  std::function<void *(size_t)> allocate;
  std::function<void(void *)> release;
  std::map<size_t, std::vector<void *>> freeBlocks; // by size
  std::unordered_map<void *, size_t> sizes;          // blocks handed out
  size_t inUse = 0, held = 0, allocations = 0;
  bool trimOnFailure = true;
  // Recording: each block's size and [start, end) in get/put events.
  bool recording = false;
  size_t events = 0;
  std::vector<size_t> recordedSizes, starts, ends;
  std::unordered_map<void *, size_t> recordedIds; // live recorded blocks
  // Serving a plan.
  char *arena = nullptr;
  const ArenaPlan *plan = nullptr;
  size_t next = 0;
  bool servedAll = true;
  std::unordered_set<void *> fromArena; // live blocks handed out of it
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_MEMORYPOOL_H
