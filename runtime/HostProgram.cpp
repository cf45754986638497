//===- HostProgram.cpp - an artifact's host code on the CPU ---------------===//
#include "runtime/HostProgram.h"

#include <cstring>

namespace aim::rt {

StatusOr<std::unique_ptr<HostProgram>>
HostProgram::load(const Artifact &artifact) {
  const aimx::HostCode *host = artifact.root->host();
  if (!host)
    return Status::error("the artifact has no host code (compiled with "
                         "--target " +
                         std::string(artifact.root->gpu() &&
                                             artifact.root->gpu()->chip()
                                         ? artifact.root->gpu()->chip()->str()
                                         : "?") +
                         "; use --device cuda, or recompile with --target "
                         "host)");
  StatusOr<std::unique_ptr<SharedObject>> code =
      SharedObject::load(*host, "host code");
  if (!code)
    return code.status();
  auto program = std::unique_ptr<HostProgram>(new HostProgram);
  program->code = std::move(*code);
  program->isa = host->isa()->str();
  return program;
}

Status HostProgram::run(PackedEntry function,
                        const std::vector<BufferRef> &buffers, size_t,
                        const std::vector<InPlace> &inPlace) {
  std::vector<void *> pointers;
  for (const BufferRef &b : buffers)
    pointers.push_back(b.data);
  function(pointers.data());
  for (const InPlace &p : inPlace)
    std::memcpy(buffers[p.argument].data, buffers[p.result].data,
                buffers[p.argument].bytes);
  return Status::ok();
}

} // namespace aim::rt
