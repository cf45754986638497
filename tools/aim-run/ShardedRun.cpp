//===- ShardedRun.cpp - training a per-rank program on its grid -----------===//
#include "tools/aim-run/ShardedRun.h"

namespace aim::rt {

StatusOr<std::unique_ptr<ShardedRun>>
ShardedRun::open(const Artifact &artifact, MpiComm &world, DeviceKind device) {
  const aimx::Grid *grid = artifact.root->grid();
  if (!grid)
    return std::unique_ptr<ShardedRun>();
  std::unique_ptr<ShardedRun> run(new ShardedRun);
  run->world = &world;
  auto collectives = GridCollectives::create(world, grid->data_parallel(),
                                             grid->tensor_parallel());
  if (!collectives)
    return collectives.status();
  run->grid = std::move(*collectives);
  const aimx::EntryPoint *step = artifact.entryPoint("train_step");
  if (!step || !step->arguments())
    return Status::error("the artifact has no train_step");
  for (const aimx::Tensor *t : *step->arguments()) {
    if (t->role() != aimx::Role::Parameter && t->role() != aimx::Role::State)
      continue;
    TensorSharding s;
    if (const aimx::Sharding *given = t->sharding())
      s = {given->tp_dim(), given->tp_groups(), given->dp_dim()};
    run->shardings[t->name()->str()] = s;
  }
  GridCollectives::install(run->grid.get());
  if (device == DeviceKind::Cuda) {
    auto nccl = NcclCollectives::create(*run->grid, world);
    if (!nccl)
      return nccl.status();
    run->gpu = std::move(*nccl);
  }
  return run;
}

ShardedRun::~ShardedRun() {
  gpu.reset();
  GridCollectives::install(nullptr);
}

Status ShardedRun::cut(NamedTensors &tensors) const {
  const GridPosition &at = position();
  for (auto &[name, t] : tensors) {
    auto it = shardings.find(name);
    if (it == shardings.end())
      return Status::error("the per-rank program has no tensor '" + name +
                           "'");
    if (std::string e = checkSharding(t.shape, it->second, at.dp, at.tp);
        !e.empty())
      return Status::error("'" + name + "' does not split over the grid: " +
                           e);
    t = cutTensor(t, it->second, at);
  }
  return Status::ok();
}

StatusOr<NamedTensors>
ShardedRun::assemble(const NamedTensors &parts) const {
  const GridPosition &at = position();
  const int64_t ranks = at.dp * at.tp;
  NamedTensors whole;
  for (const auto &[name, part] : parts) {
    const TensorSharding &s = shardings.at(name);
    if (s.whole()) { // every rank holds the same
      whole.emplace_back(name, part);
      continue;
    }
    if (part.dtype != DType::F32)
      return Status::error("'" + name + "' is not float32");
    const int64_t count = part.numElements();
    std::vector<float> all(count * ranks);
    if (Status st = world->allGather(
            reinterpret_cast<const float *>(part.bytes.data()), all.data(),
            count, "the parts of '" + name + "' for a checkpoint");
        !st)
      return st;
    HostTensor t = HostTensor::zeros(
        DType::F32, wholeShape(part.shape, s, at.dp, at.tp));
    for (int64_t r = 0; r < ranks; ++r) {
      HostTensor piece = part;
      std::memcpy(piece.bytes.data(), &all[r * count], count * sizeof(float));
      placeTensor(t, piece, s, GridPosition::ofRank(r, at.dp, at.tp));
    }
    whole.emplace_back(name, std::move(t));
  }
  return whole;
}

} // namespace aim::rt
