//===- MemoryPool.cpp - reuse of device allocations by size ---------------===//
#include "runtime/cuda/MemoryPool.h"

#include <algorithm>
#include <cstdint>

namespace aim::rt {

void *MemoryPool::get(size_t bytes) {
  size_t size = (bytes + 255) / 256 * 256;
  if (size == 0)
    size = 256;
  if (plan) {
    if (next < plan->sizes.size() && plan->sizes[next] == size) {
      void *block = arena + plan->offsets[next++];
      fromArena.insert(block);
      return block;
    }
    plan = nullptr; // a different call than the recorded one
    servedAll = false;
  }
  void *block = getFromPool(size);
  if (recording && block) {
    recordedIds[block] = recordedSizes.size();
    recordedSizes.push_back(size);
    starts.push_back(events++);
    ends.push_back(SIZE_MAX);
  }
  return block;
}

void *MemoryPool::getFromPool(size_t size) {
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
  if (fromArena.erase(block))
    return true;
  if (recording)
    if (auto id = recordedIds.find(block); id != recordedIds.end()) {
      ends[id->second] = events++;
      recordedIds.erase(id);
    }
  auto it = sizes.find(block);
  if (it == sizes.end())
    return false;
  freeBlocks[it->second].push_back(block);
  inUse -= it->second;
  sizes.erase(it);
  return true;
}

void MemoryPool::startRecording() {
  recording = true;
  events = 0;
  recordedSizes.clear();
  starts.clear();
  ends.clear();
  recordedIds.clear();
}

ArenaPlan MemoryPool::finishRecording() {
  recording = false;
  recordedIds.clear();
  for (size_t &end : ends)
    if (end == SIZE_MAX) // not freed in the call: alive to its end
      end = events;
  return placeInArena(recordedSizes, starts, ends);
}

void MemoryPool::serve(char *base, const ArenaPlan &p) {
  arena = base;
  plan = &p;
  next = 0;
  servedAll = true;
}

bool MemoryPool::stopServing() {
  bool all = servedAll && (!plan || next == plan->sizes.size());
  plan = nullptr;
  servedAll = true;
  return all;
}

ArenaPlan placeInArena(const std::vector<size_t> &sizes,
                       const std::vector<size_t> &starts,
                       const std::vector<size_t> &ends) {
  ArenaPlan plan;
  plan.sizes = sizes;
  plan.offsets.assign(sizes.size(), 0);
  std::vector<size_t> order(sizes.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return sizes[a] > sizes[b];
  });
  std::vector<size_t> placed;
  for (size_t i : order) {
    // The placed blocks alive at the same time, by offset.
    std::vector<std::pair<size_t, size_t>> taken; // offset, end offset
    for (size_t j : placed)
      if (starts[j] < ends[i] && starts[i] < ends[j])
        taken.emplace_back(plan.offsets[j], plan.offsets[j] + sizes[j]);
    std::sort(taken.begin(), taken.end());
    size_t offset = 0;
    for (auto [from, to] : taken) {
      if (from >= offset + sizes[i])
        break; // fits in the gap before this one
      offset = std::max(offset, to);
    }
    plan.offsets[i] = offset;
    plan.bytes = std::max(plan.bytes, offset + sizes[i]);
    placed.push_back(i);
  }
  // The liveness peak, by a sweep over the events (an end before a start
  // at the same event: [start, end) intervals).
  std::vector<std::pair<size_t, long long>> changes;
  for (size_t i = 0; i < sizes.size(); ++i) {
    changes.emplace_back(starts[i], static_cast<long long>(sizes[i]));
    changes.emplace_back(ends[i], -static_cast<long long>(sizes[i]));
  }
  std::sort(changes.begin(), changes.end());
  long long live = 0;
  for (auto [event, change] : changes) {
    live += change;
    plan.peakLive = std::max(plan.peakLive, static_cast<size_t>(live));
  }
  return plan;
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
