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
#include <vector>

namespace aim::rt {

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

  size_t bytesInUse() const { return inUse; }
  size_t bytesHeld() const { return held; }
  size_t driverAllocations() const { return allocations; }

private:
  std::function<void *(size_t)> allocate;
  std::function<void(void *)> release;
  std::map<size_t, std::vector<void *>> freeBlocks; // by size
  std::unordered_map<void *, size_t> sizes;          // blocks handed out
  size_t inUse = 0, held = 0, allocations = 0;
  bool trimOnFailure = true;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_MEMORYPOOL_H
