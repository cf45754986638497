//===- EntryCall.h - call a compiled entry point with named buffers -------===//
//
// An entry point's arguments and results are named in the artifact (images,
// prefix, lr, step, each parameter, each optimiser state, loss, ...). A call
// binds host tensors to those names, checks every shape and element type
// against the artifact, and receives the results in tensors it allocates
// once and reuses.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_ENTRYCALL_H
#define AIMC_RUNTIME_ENTRYCALL_H

#include "common/HostTensor.h"
#include "runtime/Program.h"

#include <map>
#include <string>
#include <vector>

namespace aim::rt {

class EntryCall {
public:
  static StatusOr<EntryCall> prepare(const Artifact &artifact,
                                     Program &program,
                                     const std::string &entryName);

  /// Runs the entry point with `arguments` bound by name.
  Status operator()(const std::map<std::string, HostTensor *> &arguments);

  /// From now on each result named like an argument (train_step's new
  /// parameters and optimiser state) updates that argument in place. On a
  /// device they stay there: the bound host tensors are read on the first
  /// call only and are current again after syncArgumentsToHost.
  void updateArgumentsInPlace();
  Status syncArgumentsToHost();

  const std::vector<std::string> &resultNames() const { return names; }
  std::vector<HostTensor> &results() { return outputs; }
  HostTensor &result(size_t i) { return outputs[i]; }
  PackedEntry function() const { return entry; }

private:
  const aimx::EntryPoint *entryPoint = nullptr;
  Program *program = nullptr;
  PackedEntry entry = nullptr;
  std::vector<std::string> names;
  std::vector<HostTensor> outputs;
  /// Results that update an argument (slots), once updateArgumentsInPlace.
  std::vector<Program::InPlace> pairs;
  /// Results the GPU code may write into their arguments' buffers.
  std::vector<std::string> sharingResults;
  /// The argument buffers of the last call.
  std::vector<BufferRef> lastArguments;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_ENTRYCALL_H
