//===- ConfigParser.cpp - model configs from YAML or JSON files -----------===//
//
// Both syntaxes are first read into a flat list of entries (key, value text,
// where it was), then one typed decoder checks every key, so YAML and JSON
// configs get exactly the same rules and messages.
//
//===----------------------------------------------------------------------===//

#include "frontends/ConfigParser.h"

#include "frontends/Presets.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/YAMLParser.h"

#include <cmath>
#include <functional>

using namespace llvm;

namespace aim {

namespace {

/// One `key: value` of the file, before its type is checked.
struct RawEntry {
  std::string key;
  std::string where; // "file:line" (YAML) or "file" (JSON), for messages
  enum class Kind { Scalar, List, Other } kind = Kind::Other;
  std::string scalar;            // Kind::Scalar
  bool quoted = false;           // a string literal rather than a number
  std::vector<std::string> list; // Kind::List of scalars
  std::string description;       // what an Other value was, for messages
};

struct KeyInfo {
  const char *name;
  bool required;
  const char *meaning;
};

/// The keys a config may have; docs/config.md documents the same list.
const KeyInfo kKeys[] = {
    {"image_size", true, "image side in pixels, an integer or [H, W]"},
    {"channels", true, "colour channels C (1 for Fashion-MNIST, 3 for RGB)"},
    {"patch_size", true, "patch side p in pixels"},
    {"width", true, "trunk width D"},
    {"depth", true, "number of trunk blocks L"},
    {"heads", true, "attention heads h"},
    {"mlp_ratio", true, "trunk MLP hidden width as a multiple of D"},
    {"head_width", true, "pre-training head width Dh"},
    {"head_depth", true, "pre-training head blocks M"},
    {"name", false, "a label for the model (default \"custom\")"},
    {"head_mlp_ratio", false, "head MLP hidden width / Dh (default 4)"},
    {"gelu", false, "\"erf\" (AIM, default) or \"tanh\""},
    {"layer_norm_epsilon", false, "epsilon of every LayerNorm (default 1e-6)"},
};

const KeyInfo *findKey(StringRef key) {
  for (const KeyInfo &k : kKeys)
    if (key == k.name)
      return &k;
  return nullptr;
}

std::string suggestKey(StringRef key) {
  const char *best = nullptr;
  unsigned bestDistance = 3;
  for (const KeyInfo &k : kKeys) {
    unsigned d = key.edit_distance(k.name, true, bestDistance);
    if (d < bestDistance) {
      bestDistance = d;
      best = k.name;
    }
  }
  std::string known;
  for (const KeyInfo &k : kKeys)
    known += (known.empty() ? "" : ", ") + std::string(k.name);
  std::string hint = best ? "did you mean '" + std::string(best) + "'? " : "";
  return hint + "(known keys: " + known + ")";
}

//===----------------------------------------------------------------------===//
// Syntax: YAML and JSON into RawEntry lists.
//===----------------------------------------------------------------------===//

Error readYaml(StringRef text, StringRef fileName,
               std::vector<RawEntry> &entries) {
  SourceMgr sourceMgr;
  std::string diagnostics;
  sourceMgr.setDiagHandler(
      [](const SMDiagnostic &diag, void *context) {
        raw_string_ostream os(*static_cast<std::string *>(context));
        diag.print(nullptr, os, /*ShowColors=*/false);
      },
      &diagnostics);
  auto buffer = MemoryBuffer::getMemBuffer(text, fileName);
  yaml::Stream stream(buffer->getMemBufferRef(), sourceMgr, false);
  auto lineOf = [&](yaml::Node *node) {
    unsigned line = sourceMgr.FindLineNumber(node->getSourceRange().Start);
    return (fileName + ":" + Twine(line)).str();
  };

  yaml::document_iterator doc = stream.begin();
  if (doc == stream.end() || !doc->getRoot() ||
      isa<yaml::NullNode>(doc->getRoot()))
    return createStringError(inconvertibleErrorCode(),
                             "%s: the file is empty; a model config is a "
                             "mapping such as `width: 192`",
                             fileName.str().c_str());
  auto *root = dyn_cast<yaml::MappingNode>(doc->getRoot());
  if (!root) {
    if (!diagnostics.empty())
      return createStringError(inconvertibleErrorCode(), "%s",
                               diagnostics.c_str());
    return createStringError(inconvertibleErrorCode(),
                             "%s: the top level must be a mapping of keys to "
                             "values, such as `width: 192`",
                             fileName.str().c_str());
  }
  for (yaml::KeyValueNode &kv : *root) {
    RawEntry entry;
    auto *key = dyn_cast_or_null<yaml::ScalarNode>(kv.getKey());
    if (!key)
      break; // a syntax error: reported from `diagnostics` below
    SmallString<32> storage;
    entry.key = key->getValue(storage).str();
    entry.where = lineOf(key);
    yaml::Node *value = kv.getValue();
    if (auto *scalar = dyn_cast_or_null<yaml::ScalarNode>(value)) {
      entry.kind = RawEntry::Kind::Scalar;
      storage.clear();
      entry.scalar = scalar->getValue(storage).str();
      entry.quoted = scalar->getRawValue().starts_with("\"") ||
                     scalar->getRawValue().starts_with("'");
    } else if (auto *seq = dyn_cast_or_null<yaml::SequenceNode>(value)) {
      entry.kind = RawEntry::Kind::List;
      for (yaml::Node &item : *seq) {
        auto *itemScalar = dyn_cast<yaml::ScalarNode>(&item);
        if (!itemScalar) {
          entry.kind = RawEntry::Kind::Other;
          entry.description = "a nested list or mapping";
          break;
        }
        storage.clear();
        entry.list.push_back(itemScalar->getValue(storage).str());
      }
    } else {
      entry.description = isa_and_nonnull<yaml::MappingNode>(value)
                              ? "a mapping"
                              : "an empty value";
    }
    entries.push_back(std::move(entry));
  }
  // Consume the rest so that syntax errors after the last good key show up.
  doc->skip();
  if (!stream.failed() && ++doc != stream.end())
    return createStringError(inconvertibleErrorCode(),
                             "%s: holds several YAML documents; a model config "
                             "is one mapping",
                             fileName.str().c_str());
  if (stream.failed())
    return createStringError(inconvertibleErrorCode(), "%s",
                             diagnostics.empty() ? "invalid YAML"
                                                 : diagnostics.c_str());
  return Error::success();
}

std::string jsonNumberText(double v) {
  // Integers print as integers; anything an int64 cannot hold (1e30, inf)
  // stays a float, so the key's own check rejects it by value.
  if (std::fabs(v) < 9.0e18 && v == std::trunc(v))
    return std::to_string(static_cast<int64_t>(v));
  return llvm::formatv("{0}", v).str();
}

Error readJson(StringRef text, StringRef fileName,
               std::vector<RawEntry> &entries) {
  Expected<json::Value> parsed = json::parse(text);
  if (!parsed)
    return createStringError(inconvertibleErrorCode(), "%s: invalid JSON: %s",
                             fileName.str().c_str(),
                             toString(parsed.takeError()).c_str());
  const json::Object *object = parsed->getAsObject();
  if (!object)
    return createStringError(inconvertibleErrorCode(),
                             "%s: the top level must be a JSON object such as "
                             "{\"width\": 192}",
                             fileName.str().c_str());
  // json::Object is unordered; sort keys so messages come in a stable order.
  std::vector<std::string> keys;
  for (const auto &kv : *object)
    keys.push_back(kv.first.str());
  llvm::sort(keys);
  for (const std::string &k : keys) {
    const json::Value &value = *object->get(k);
    RawEntry entry;
    entry.key = k;
    entry.where = fileName.str();
    auto scalarOf = [](const json::Value &v, std::string &text, bool &quoted) {
      if (auto s = v.getAsString()) {
        text = s->str();
        quoted = true;
        return true;
      }
      if (auto n = v.getAsNumber()) {
        text = jsonNumberText(*n);
        return true;
      }
      return false;
    };
    if (scalarOf(value, entry.scalar, entry.quoted)) {
      entry.kind = RawEntry::Kind::Scalar;
    } else if (const json::Array *array = value.getAsArray()) {
      entry.kind = RawEntry::Kind::List;
      for (const json::Value &item : *array) {
        std::string itemText;
        bool itemQuoted = false;
        if (!scalarOf(item, itemText, itemQuoted)) {
          entry.kind = RawEntry::Kind::Other;
          entry.description = "a nested list or object";
          break;
        }
        entry.list.push_back(itemText);
      }
    } else {
      entry.description = value.getAsObject()    ? "an object"
                          : value.getAsBoolean() ? "a boolean"
                                                 : "null";
    }
    entries.push_back(std::move(entry));
  }
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Types: RawEntry list into ModelConfig.
//===----------------------------------------------------------------------===//

std::string describe(const RawEntry &e) {
  switch (e.kind) {
  case RawEntry::Kind::Scalar:
    return e.quoted ? "the string \"" + e.scalar + "\"" : "'" + e.scalar + "'";
  case RawEntry::Kind::List:
    return "a list of " + std::to_string(e.list.size());
  case RawEntry::Kind::Other:
    return e.description;
  }
  return "";
}

bool parseInteger(StringRef text, int64_t &out) {
  return !text.trim().getAsInteger(10, out);
}

Expected<ModelConfig> decodeEntries(const std::vector<RawEntry> &entries,
                                    StringRef fileName) {
  ModelConfig config;
  std::vector<std::string> errors;
  StringSet<> seen;
  auto error = [&](const RawEntry &e, const std::string &message) {
    errors.push_back(e.where + ": " + message);
  };
  auto integer = [&](const RawEntry &e, int64_t &out) {
    if (e.kind != RawEntry::Kind::Scalar || e.quoted ||
        !parseInteger(e.scalar, out))
      error(e, "key '" + e.key + "' must be an integer (" +
                   findKey(e.key)->meaning + "), got " + describe(e));
  };
  auto string = [&](const RawEntry &e, std::string &out) {
    if (e.kind != RawEntry::Kind::Scalar)
      error(e, "key '" + e.key + "' must be a string (" +
                   findKey(e.key)->meaning + "), got " + describe(e));
    else
      out = e.scalar;
  };

  for (const RawEntry &e : entries) {
    const KeyInfo *info = findKey(e.key);
    if (!info) {
      error(e, "unknown key '" + e.key + "'; " + suggestKey(e.key));
      continue;
    }
    if (!seen.insert(e.key).second) {
      error(e, "key '" + e.key + "' is given twice; keep one");
      continue;
    }
    StringRef key = e.key;
    if (key == "image_size") {
      int64_t h = 0, w = 0;
      bool ok = false;
      if (e.kind == RawEntry::Kind::Scalar && !e.quoted) {
        ok = parseInteger(e.scalar, h);
        w = h;
      } else if (e.kind == RawEntry::Kind::List && e.list.size() == 2) {
        ok = parseInteger(e.list[0], h) && parseInteger(e.list[1], w);
      }
      if (!ok)
        error(e, "key 'image_size' must be an integer or a list [H, W] of two "
                 "integers, got " +
                     describe(e));
      config.imageHeight = h;
      config.imageWidth = w;
    } else if (key == "channels") {
      integer(e, config.channels);
    } else if (key == "patch_size") {
      integer(e, config.patchSize);
    } else if (key == "width") {
      integer(e, config.width);
    } else if (key == "depth") {
      integer(e, config.depth);
    } else if (key == "heads") {
      integer(e, config.heads);
    } else if (key == "mlp_ratio") {
      integer(e, config.mlpRatio);
    } else if (key == "head_width") {
      integer(e, config.headWidth);
    } else if (key == "head_depth") {
      integer(e, config.headDepth);
    } else if (key == "head_mlp_ratio") {
      integer(e, config.headMlpRatio);
    } else if (key == "name") {
      string(e, config.name);
    } else if (key == "gelu") {
      string(e, config.gelu);
    } else if (key == "layer_norm_epsilon") {
      if (e.kind != RawEntry::Kind::Scalar || e.quoted ||
          StringRef(e.scalar).trim().getAsDouble(config.layerNormEpsilon))
        error(e,
              "key 'layer_norm_epsilon' must be a number, got " + describe(e));
    }
  }
  for (const KeyInfo &k : kKeys)
    if (k.required && !seen.contains(k.name))
      errors.push_back(fileName.str() + ": missing key '" + k.name +
                       "': add `" + k.name + ": <value>` (" + k.meaning + ")");
  if (errors.empty()) {
    for (const std::string &problem : validateModelConfig(config))
      errors.push_back(fileName.str() + ": " + problem);
  }
  if (!errors.empty())
    return createStringError(inconvertibleErrorCode(), "%s",
                             join(errors, "\n").c_str());
  return config;
}

} // namespace

Expected<ModelConfig> parseModelConfig(StringRef text, StringRef fileName,
                                       bool isJson) {
  std::vector<RawEntry> entries;
  if (Error err = isJson ? readJson(text, fileName, entries)
                         : readYaml(text, fileName, entries))
    return std::move(err);
  return decodeEntries(entries, fileName);
}

Expected<ModelConfig> loadModelConfig(StringRef presetOrPath) {
  if (std::optional<ModelConfig> preset = findPreset(presetOrPath.str()))
    return *preset;
  ErrorOr<std::unique_ptr<MemoryBuffer>> file =
      MemoryBuffer::getFile(presetOrPath, /*IsText=*/true);
  if (!file) {
    std::string presets;
    for (const ModelConfig &c : modelPresets())
      presets += (presets.empty() ? "" : ", ") + c.name;
    return createStringError(inconvertibleErrorCode(),
                             "--model '%s' is neither a preset (%s) nor a "
                             "readable config file: %s",
                             presetOrPath.str().c_str(), presets.c_str(),
                             file.getError().message().c_str());
  }
  bool isJson = sys::path::extension(presetOrPath).equals_insensitive(".json");
  return parseModelConfig((*file)->getBuffer(), presetOrPath, isJson);
}

} // namespace aim
