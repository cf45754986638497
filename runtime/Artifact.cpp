//===- Artifact.cpp - reading and checking .aimx files --------------------===//
#include "runtime/Artifact.h"

#include "common/FileIO.h"
#include "common/Philox.h"

#include <cstdio>

namespace aim::rt {

const aimx::EntryPoint *Artifact::entryPoint(const std::string &name) const {
  if (!root->entry_points())
    return nullptr;
  for (const aimx::EntryPoint *e : *root->entry_points())
    if (e->name() && e->name()->str() == name)
      return e;
  return nullptr;
}

bool cpuSupports(const std::string &isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (isa == "x86-64")
    return true;
  if (isa == "x86-64-v2")
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
  if (isa == "x86-64-v3")
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("bmi2");
  if (isa == "x86-64-v4")
    return __builtin_cpu_supports("avx512f");
#endif
  return false;
}

StatusOr<Artifact> verifyArtifact(std::string bytes, const std::string &what) {
  auto bad = [&](const std::string &problem) {
    return Status::error("'" + what +
                         "' is not a usable .aimx artifact: " + problem);
  };
  if (bytes.size() < 8 || !aimx::ArtifactBufferHasIdentifier(bytes.data()))
    return bad("the file identifier AIMX is missing (not an artifact, or "
               "truncated)");
  flatbuffers::Verifier verifier(
      reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
  if (!aimx::VerifyArtifactBuffer(verifier))
    return bad("the FlatBuffers verifier rejects it (truncated or corrupted)");
  Artifact a;
  a.bytes = std::move(bytes);
  a.root = aimx::GetArtifact(a.bytes.data());
  if (a.root->schema_version() != kAimxSchemaVersion)
    return bad("schema version " + std::to_string(a.root->schema_version()) +
               ", this aim-run reads version " +
               std::to_string(kAimxSchemaVersion) + ": recompile with aimc");
  const aimx::HostCode *host = a.root->host();
  const aimx::GpuCode *gpu = a.root->gpu();
  if (!host && !gpu)
    return bad("it holds no code (neither host nor GPU)");
  if (gpu && (!gpu->chip() || !gpu->launcher()))
    return bad("its GPU code lacks its chip or its launcher code");
  for (const aimx::HostCode *code : {host, gpu ? gpu->launcher() : nullptr}) {
    if (!code)
      continue;
    const char *what = code == host ? "host code" : "GPU launcher code";
    if (!code->isa() || !code->shared_object() ||
        code->shared_object()->size() == 0)
      return bad(std::string("its ") + what + " is empty");
    const auto *bytes = code->shared_object();
    if (fnv1a64(bytes->data(), bytes->size()) != code->checksum())
      return bad(std::string("its ") + what + " fails its checksum (corrupted)");
    std::string isa = code->isa()->str();
    if (!cpuSupports(isa))
      return bad("its code is for " + isa +
                 ", which this CPU cannot run; compile with aimc --cpu for an "
                 "older ISA");
  }
  if (!a.root->entry_points() || !a.root->parameters() ||
      a.root->batch() <= 0 || a.root->num_patches() < 2)
    return bad("it lacks entry points, parameters or sizes");
  // A short, stable name of the exact bytes, for checkpoints.
  char text[17];
  std::snprintf(
      text, sizeof(text), "%016llx",
      static_cast<unsigned long long>(fnv1a64(a.bytes.data(), a.bytes.size())));
  a.hash = text;
  return a;
}

StatusOr<Artifact> readArtifact(const std::string &path) {
  StatusOr<std::string> bytes = readWholeFile(path);
  if (!bytes)
    return bytes.status();
  return verifyArtifact(std::move(*bytes), path);
}

} // namespace aim::rt
