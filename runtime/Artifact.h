//===- Artifact.h - reading and checking .aimx files ------------*- C++ -*-===//
//
// Nothing in an artifact is used before the FlatBuffers verifier, the file
// identifier, the schema version and the ISA have been checked: a truncated,
// corrupted or mismatched file is an error message, never a crash.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_ARTIFACT_H
#define AIMC_RUNTIME_ARTIFACT_H

#include "common/Status.h"

#include "runtime/schema/aimx_generated.h"

#include <string>

namespace aim::rt {

inline constexpr uint32_t kAimxSchemaVersion =
    static_cast<uint32_t>(aimx::SchemaVersion::Current);

/// A verified artifact; `root` points into `bytes`.
struct Artifact {
  std::string bytes;
  const aimx::Artifact *root = nullptr;
  std::string hash; // of the file, recorded in checkpoints

  const aimx::EntryPoint *entryPoint(const std::string &name) const;
};

StatusOr<Artifact> readArtifact(const std::string &path);

/// Verifies `bytes` as an artifact (also used on data already in memory).
StatusOr<Artifact> verifyArtifact(std::string bytes, const std::string &what);

/// Whether this CPU can run code compiled for `isa`.
bool cpuSupports(const std::string &isa);

} // namespace aim::rt

#endif // AIMC_RUNTIME_ARTIFACT_H
