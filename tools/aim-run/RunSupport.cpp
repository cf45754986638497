//===- RunSupport.cpp - what aim-run's commands share ---------------------===//
#include "tools/aim-run/RunSupport.h"

#include "common/ParameterInit.h"

#include <cstdio>
#include <cstdlib>

namespace aim::rt {

int fail(const std::string &message) {
  std::fprintf(stderr, "aim-run: error: %s\n", message.c_str());
  return 1;
}

void warn(const std::string &message) {
  std::fprintf(stderr, "aim-run: warning: %s\n", message.c_str());
}

bool parseInt(const char *text, int64_t &out) {
  char *end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (!*text || *end)
    return false;
  out = v;
  return true;
}

ModelImageShape LoadedModel::imageShape() const {
  return {artifact.root->image_channels(), artifact.root->image_height(),
          artifact.root->image_width()};
}

PrefixMode LoadedModel::prefixMode() const {
  return artifact.root->prefix_mode() &&
                 artifact.root->prefix_mode()->str() == "antithetic"
             ? PrefixMode::Antithetic
             : PrefixMode::Iid;
}

StatusOr<LoadedModel> loadModel(const std::string &path, DeviceKind device,
                                GemmPrecision gemm) {
  StatusOr<Artifact> artifact = readArtifact(path);
  if (!artifact)
    return artifact.status();
  LoadedModel model;
  model.artifact = std::move(*artifact);
  StatusOr<std::unique_ptr<Program>> program =
      loadProgram(model.artifact, device, gemm);
  if (!program)
    return program.status();
  model.program = std::move(*program);
  return model;
}

Status refusePerRank(const LoadedModel &model, const std::string &command) {
  if (!model.artifact.root->grid())
    return Status::ok();
  return Status::error(
      command + " runs the whole step; this artifact is one rank's program "
      "of a grid (aimc --mesh): train it under mpirun, or compile the model "
      "without --mesh for " + command + " (checkpoints are whole)");
}

StatusOr<NamedTensors> initialParameters(const Artifact &artifact,
                                         const std::string &file,
                                         uint64_t seed) {
  NamedTensors params;
  if (file.empty()) {
    for (const aimx::Parameter *p : *artifact.root->parameters()) {
      ParamSpec spec{p->name()->str(), {}, InitKind::Zeros, p->weight_decay()};
      spec.shape.assign(p->shape()->begin(), p->shape()->end());
      spec.init = p->init() == aimx::InitKind::Zeros  ? InitKind::Zeros
                  : p->init() == aimx::InitKind::Ones ? InitKind::Ones
                                                      : InitKind::XavierUniform;
      params.emplace_back(spec.name, initialTensor(spec, seed));
    }
    return params;
  }
  StatusOr<NamedTensors> read = readSafetensors(file);
  if (!read)
    return read.status();
  std::map<std::string, HostTensor *> found = byName(*read);
  for (const aimx::Parameter *p : *artifact.root->parameters()) {
    std::string name = p->name()->str();
    std::vector<int64_t> shape(p->shape()->begin(), p->shape()->end());
    auto it = found.find(name);
    if (it == found.end() || it->second->shape != shape)
      return Status::error("'" + file + "' lacks parameter '" + name +
                           "' of shape " + shapeToString(shape));
    std::vector<double> v = it->second->toDoubles();
    params.emplace_back(name, HostTensor::fromDoubles(DType::F32, shape, v));
  }
  if (params.size() != read->size())
    return Status::error("'" + file + "' holds tensors this model does not "
                         "have");
  return params;
}

std::map<std::string, HostTensor *> byName(NamedTensors &tensors) {
  std::map<std::string, HostTensor *> named;
  for (auto &[name, t] : tensors)
    named[name] = &t;
  return named;
}

} // namespace aim::rt
