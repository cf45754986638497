//===- FuzzArtifact.cpp - libFuzzer target: the .aimx verifier ------------===//
//
// Everything aim-run reads from an artifact before loading its code: the
// verifier, the identifier, the version, the ISA, the checksum, and the
// tables it then walks (entry points, tensors, parameters).
//
//===----------------------------------------------------------------------===//
#include "runtime/Artifact.h"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  aim::StatusOr<aim::rt::Artifact> a = aim::rt::verifyArtifact(
      std::string(reinterpret_cast<const char *>(data), size), "fuzz");
  if (!a)
    return 0;
  for (const aim::aimx::EntryPoint *e : *a->root->entry_points()) {
    if (e->arguments())
      for (const aim::aimx::Tensor *t : *e->arguments())
        (void)(t->name() ? t->name()->size() : 0);
  }
  for (const aim::aimx::Parameter *p : *a->root->parameters())
    (void)(p->shape() ? p->shape()->size() : 0);
  (void)a->entryPoint("train_step");
  return 0;
}
