//===- Checkpoint.cpp - run directories: weights, optimiser, state --------===//
#include "runtime/Checkpoint.h"

#include "common/FileIO.h"
#include "common/MiniJson.h"

#include <cmath>
#include <map>

namespace aim::rt {

namespace {
const char *kModelFile = "model.safetensors";
const char *kOptimizerFile = "optim.safetensors";
const char *kStateFile = "state.json";

std::string join(const std::string &dir, const char *file) {
  return dir + "/" + file;
}
} // namespace

Status writeCheckpoint(const std::string &runDir, const Checkpoint &c) {
  if (Status s = writeSafetensors(join(runDir, kModelFile), c.model); !s)
    return s;
  if (Status s = writeSafetensors(join(runDir, kOptimizerFile), c.optimizer);
      !s)
    return s;
  std::string state =
      "{\"format\": \"aimc-run-state\", \"version\": 1, \"step\": " +
      std::to_string(c.state.step) +
      ", \"seed\": " + std::to_string(c.state.seed) +
      ", \"data_position\": " + std::to_string(c.state.dataPosition) +
      ", \"total_steps\": " + std::to_string(c.state.totalSteps) +
      ", \"threads\": " + std::to_string(c.state.threads) +
      ", \"accumulate\": " + std::to_string(c.state.accumulate) +
      ", \"images_per_step\": " + std::to_string(c.state.imagesPerStep) +
      ", \"artifact_hash\": \"" + escapeJsonString(c.state.artifactHash) +
      "\", \"model_hash\": \"" + escapeJsonString(c.state.modelHash) +
      "\"}\n";
  return writeFileAtomically(join(runDir, kStateFile), state);
}

StatusOr<Checkpoint> readCheckpoint(const std::string &runDir) {
  std::string statePath = join(runDir, kStateFile);
  StatusOr<std::string> text = readWholeFile(statePath);
  if (!text)
    return Status::error("no checkpoint in '" + runDir +
                         "': " + text.status().message());
  StatusOr<JsonValue> json = parseJson(*text);
  if (!json || json->kind != JsonValue::Kind::Object)
    return Status::error("'" + statePath + "' is not a valid run state (" +
                         (json ? "not an object" : json.status().message()) +
                         ")");
  Checkpoint c;
  auto integer = [&](const char *key, int64_t &out) -> Status {
    const JsonValue *v = json->find(key);
    if (!v || v->kind != JsonValue::Kind::Number || v->number < 0 ||
        v->number != std::floor(v->number) || v->number > 9.0e15)
      return Status::error("'" + statePath + "': '" + key +
                           "' is missing or not a non-negative integer");
    out = static_cast<int64_t>(v->number);
    return Status::ok();
  };
  const JsonValue *format = json->find("format");
  if (!format || format->string != "aimc-run-state")
    return Status::error("'" + statePath + "' is not an aimc run state");
  int64_t version = 0, seed = 0;
  for (auto [key, field] :
       {std::pair<const char *, int64_t *>{"version", &version},
        {"step", &c.state.step},
        {"seed", &seed},
        {"data_position", &c.state.dataPosition},
        {"total_steps", &c.state.totalSteps}})
    if (Status s = integer(key, *field); !s)
      return s;
  if (version != 1)
    return Status::error("'" + statePath + "' has state version " +
                         std::to_string(version) + "; this aim-run reads 1");
  c.state.seed = static_cast<uint64_t>(seed);
  if (const JsonValue *hash = json->find("artifact_hash"))
    c.state.artifactHash = hash->string;
  if (const JsonValue *hash = json->find("model_hash"))
    c.state.modelHash = hash->string;
  if (json->find("images_per_step")) // optional: absent in older state files
    if (Status s = integer("images_per_step", c.state.imagesPerStep); !s)
      return s;
  if (json->find("threads")) // optional: absent in older state files
    if (Status s = integer("threads", c.state.threads); !s)
      return s;
  if (json->find("accumulate")) // likewise
    if (Status s = integer("accumulate", c.state.accumulate); !s)
      return s;
  if (c.state.accumulate < 1)
    return Status::error("'" + statePath + "' has accumulate " +
                         std::to_string(c.state.accumulate) +
                         "; it must be at least 1");

  StatusOr<NamedTensors> model = readSafetensors(join(runDir, kModelFile));
  if (!model)
    return model.status();
  StatusOr<NamedTensors> optimizer =
      readSafetensors(join(runDir, kOptimizerFile));
  if (!optimizer)
    return optimizer.status();
  std::map<std::string, const HostTensor *> moments;
  for (const auto &[name, tensor] : *optimizer)
    moments[name] = &tensor;
  for (const auto &[name, tensor] : *model)
    for (const char *suffix : {".exp_avg", ".exp_avg_sq"}) {
      auto it = moments.find(name + suffix);
      if (it == moments.end() || it->second->shape != tensor.shape)
        return Status::error("'" + join(runDir, kOptimizerFile) + "' lacks '" +
                             name + suffix + "' of shape " +
                             shapeToString(tensor.shape));
    }
  if (optimizer->size() != 2 * model->size())
    return Status::error("'" + join(runDir, kOptimizerFile) +
                         "' holds tensors of no parameter of the model");
  c.model = std::move(*model);
  c.optimizer = std::move(*optimizer);
  return c;
}

} // namespace aim::rt
