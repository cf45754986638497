//===- Prefetcher.cpp - batches prepared ahead on data threads ------------===//
#include "runtime/Prefetcher.h"

namespace aim::rt {

Prefetcher::Prefetcher(MakeBatch make, int64_t firstStep, int depth,
                       int threads)
    : make(std::move(make)), depth(depth), nextToClaim(firstStep),
      nextToHand(firstStep) {
  for (int i = 0; i < threads; ++i)
    workers.emplace_back([this] { work(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  changed.notify_all();
  for (std::thread &t : workers)
    t.join();
}

void Prefetcher::work() {
  for (;;) {
    int64_t step;
    {
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait(lock, [&] {
        return stopping || nextToClaim < nextToHand + depth;
      });
      if (stopping)
        return;
      step = nextToClaim++;
    }
    StatusOr<Batch> batch = make(step);
    std::lock_guard<std::mutex> lock(mutex);
    finished.emplace(step, std::move(batch));
    changed.notify_all();
  }
}

StatusOr<Batch> Prefetcher::next() {
  std::unique_lock<std::mutex> lock(mutex);
  changed.wait(lock, [&] { return finished.count(nextToHand) != 0; });
  auto it = finished.find(nextToHand);
  StatusOr<Batch> batch = std::move(it->second);
  finished.erase(it);
  ++nextToHand;
  changed.notify_all();
  return batch;
}

} // namespace aim::rt
