//===- EntryCall.cpp - call a compiled entry point with named buffers -----===//
#include "runtime/EntryCall.h"

#include <algorithm>

namespace aim::rt {

namespace {
StatusOr<DType> hostType(aimx::ElementType type) {
  switch (type) {
  case aimx::ElementType::F32: return DType::F32;
  case aimx::ElementType::F64: return DType::F64;
  case aimx::ElementType::I32: return DType::I32;
  case aimx::ElementType::I64: return DType::I64;
  default:
    return Status::error(std::string("host code cannot hold ") +
                         aimx::EnumNameElementType(type) + " tensors");
  }
}

std::vector<int64_t> shapeOf(const aimx::Tensor *t) {
  return t->shape()
             ? std::vector<int64_t>(t->shape()->begin(), t->shape()->end())
             : std::vector<int64_t>{};
}

std::string nameOf(const aimx::Tensor *t) {
  return t->name() ? t->name()->str() : std::string();
}
} // namespace

StatusOr<EntryCall> EntryCall::prepare(const Artifact &artifact,
                                       Program &program,
                                       const std::string &entryName) {
  const aimx::EntryPoint *entryPoint = artifact.entryPoint(entryName);
  if (!entryPoint || !entryPoint->arguments() || !entryPoint->results())
    return Status::error("the artifact has no entry point '" + entryName +
                         "' (compiled by an older aimc? recompile it)");
  StatusOr<PackedEntry> function = program.entry(*entryPoint);
  if (!function)
    return function.status();
  EntryCall call;
  call.entryPoint = entryPoint;
  call.entry = *function;
  call.program = &program;
  if (const aimx::GpuCode *gpu = artifact.root->gpu())
    if (gpu->in_place_results())
      for (const aimx::InPlaceResults *r : *gpu->in_place_results())
        if (r->entry() && r->entry()->str() == entryName && r->tensors())
          for (const flatbuffers::String *name : *r->tensors())
            call.sharingResults.push_back(name->str());
  for (const aimx::Tensor *t : *entryPoint->results()) {
    StatusOr<DType> type = hostType(t->element());
    if (!type)
      return type.status();
    call.names.push_back(nameOf(t));
    call.outputs.push_back(HostTensor::zeros(*type, shapeOf(t)));
  }
  return call;
}

Status
EntryCall::operator()(const std::map<std::string, HostTensor *> &arguments) {
  std::vector<BufferRef> buffers;
  const std::string entryName = entryPoint->name()->str();
  for (const aimx::Tensor *t : *entryPoint->arguments()) {
    std::string name = nameOf(t);
    auto it = arguments.find(name);
    if (it == arguments.end())
      return Status::error("the artifact's " + entryName + " takes '" + name +
                           "', which aim-run does not have");
    StatusOr<DType> type = hostType(t->element());
    if (!type)
      return type.status();
    HostTensor *tensor = it->second;
    if (tensor->shape != shapeOf(t) || tensor->dtype != *type)
      return Status::error("'" + name + "' is " + shapeToString(tensor->shape) +
                           " but the artifact's " + entryName + " takes " +
                           shapeToString(shapeOf(t)));
    buffers.push_back({tensor->bytes.data(), tensor->bytes.size()});
  }
  size_t numArguments = buffers.size();
  for (HostTensor &out : outputs)
    buffers.push_back({out.bytes.data(), out.bytes.size()});
  lastArguments.assign(buffers.begin(), buffers.begin() + numArguments);
  return program->run(entry, buffers, numArguments, pairs);
}

void EntryCall::updateArgumentsInPlace() {
  pairs.clear();
  const size_t numArguments = entryPoint->arguments()->size();
  for (size_t r = 0; r < names.size(); ++r)
    for (size_t a = 0; a < numArguments; ++a)
      if (nameOf(entryPoint->arguments()->Get(a)) == names[r])
        pairs.push_back({numArguments + r, a,
                         std::find(sharingResults.begin(), sharingResults.end(),
                                   names[r]) != sharingResults.end()});
}

Status EntryCall::syncArgumentsToHost() {
  if (lastArguments.empty()) // not called yet: the host buffers are current
    return Status::ok();
  for (const Program::InPlace &p : pairs)
    if (Status s = program->fetchArgument(entry, p.argument,
                                          lastArguments[p.argument]);
        !s)
      return s;
  return Status::ok();
}

} // namespace aim::rt
