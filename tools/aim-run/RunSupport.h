//===- RunSupport.h - what aim-run's commands share -----------------------===//
#ifndef AIMC_TOOLS_AIMRUN_RUNSUPPORT_H
#define AIMC_TOOLS_AIMRUN_RUNSUPPORT_H

#include "common/Safetensors.h"
#include "runtime/Artifact.h"
#include "runtime/EntryCall.h"
#include "runtime/Program.h"
#include "runtime/ImageFolderBatches.h"

#include <map>
#include <memory>
#include <string>

namespace aim::rt {

/// Prints "aim-run: error: <message>" and returns 1.
int fail(const std::string &message);
void warn(const std::string &message);

bool parseInt(const char *text, int64_t &out);

/// `--data synthetic`: generated images (runtime/SyntheticBatches.h).
inline constexpr const char *kSyntheticData = "synthetic";

/// An artifact with its code for one device loaded.
struct LoadedModel {
  Artifact artifact;
  std::unique_ptr<Program> program;

  ModelImageShape imageShape() const;
  int64_t batch() const { return artifact.root->batch(); }
  int64_t numPatches() const { return artifact.root->num_patches(); }
  PrefixMode prefixMode() const;
};
StatusOr<LoadedModel> loadModel(const std::string &path,
                                DeviceKind device = DeviceKind::Host,
                                GemmPrecision gemm = GemmPrecision::F32);

/// An error for `command` when the artifact is one rank's program (aimc
/// --mesh): its step communicates, so only `train` under mpirun runs it.
Status refusePerRank(const LoadedModel &model, const std::string &command);

/// The artifact's parameters under AIM.md's initialisation (seeded), or read
/// from a .safetensors file and checked against the artifact's table.
StatusOr<NamedTensors> initialParameters(const Artifact &artifact,
                                         const std::string &file,
                                         uint64_t seed);

/// Name -> tensor, for EntryCall.
std::map<std::string, HostTensor *> byName(NamedTensors &tensors);

} // namespace aim::rt

#endif // AIMC_TOOLS_AIMRUN_RUNSUPPORT_H
