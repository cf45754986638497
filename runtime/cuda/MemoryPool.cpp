//===- MemoryPool.cpp - reuse of device allocations by size ---------------===//
#include "runtime/cuda/MemoryPool.h"

namespace aim::rt {

void *MemoryPool::get(size_t bytes) {
  size_t size = (bytes + 255) / 256 * 256;
  if (size == 0)
    size = 256;
  auto it = freeBlocks.find(size);
  if (it != freeBlocks.end() && !it->second.empty()) {
    void *block = it->second.back();
    it->second.pop_back();
    sizes[block] = size;
    inUse += size;
    return block;
  }
  void *block = allocate(size);
  if (!block && trimOnFailure) { // give back what is cached, retry once
    trim();
    block = allocate(size);
    if (!block)
      return nullptr;
  }
  ++allocations;
  sizes[block] = size;
  inUse += size;
  held += size;
  return block;
}

bool MemoryPool::put(void *block) {
  auto it = sizes.find(block);
  if (it == sizes.end())
    return false;
  freeBlocks[it->second].push_back(block);
  inUse -= it->second;
  sizes.erase(it);
  return true;
}

void MemoryPool::trim() {
  for (auto &[size, blocks] : freeBlocks)
    for (void *block : blocks) {
      release(block);
      held -= size;
    }
  freeBlocks.clear();
}

} // namespace aim::rt
