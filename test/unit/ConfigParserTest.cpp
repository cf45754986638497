//===- ConfigParserTest.cpp - YAML/JSON configs and their errors ----------===//
#include "frontends/ConfigParser.h"
#include "frontends/Presets.h"

#include <gtest/gtest.h>

#include <random>

using namespace aim;

namespace {
const char *kValidYaml = "name: tiny\n"
                         "image_size: [8, 12]\n"
                         "channels: 3\n"
                         "patch_size: 4\n"
                         "width: 32\n"
                         "depth: 2\n"
                         "heads: 4\n"
                         "mlp_ratio: 4\n"
                         "head_width: 24\n"
                         "head_depth: 2\n";

std::string errorOf(llvm::StringRef text, bool json = false) {
  llvm::Expected<ModelConfig> config =
      parseModelConfig(text, json ? "c.json" : "c.yaml", json);
  if (config)
    return "";
  return llvm::toString(config.takeError());
}
} // namespace

TEST(ConfigParser, YamlAndJsonGiveTheSameConfig) {
  llvm::Expected<ModelConfig> yaml =
      parseModelConfig(kValidYaml, "c.yaml", false);
  ASSERT_TRUE(bool(yaml)) << llvm::toString(yaml.takeError());
  EXPECT_EQ(yaml->name, "tiny");
  EXPECT_EQ(yaml->imageHeight, 8);
  EXPECT_EQ(yaml->imageWidth, 12);
  EXPECT_EQ(yaml->numPatches(), 6);
  EXPECT_EQ(yaml->headMlpRatio, 4); // optional key, default
  EXPECT_EQ(yaml->gelu, "erf");
  llvm::Expected<ModelConfig> json = parseModelConfig(
      R"({"name": "tiny", "image_size": [8, 12], "channels": 3,
          "patch_size": 4, "width": 32, "depth": 2, "heads": 4,
          "mlp_ratio": 4, "head_width": 24, "head_depth": 2,
          "gelu": "tanh"})",
      "c.json", true);
  ASSERT_TRUE(bool(json)) << llvm::toString(json.takeError());
  EXPECT_EQ(json->imageWidth, 12);
  EXPECT_EQ(json->headWidth, 24);
  EXPECT_EQ(json->gelu, "tanh");
}

TEST(ConfigParser, SquareImageSizeAsOneInteger) {
  std::string text = kValidYaml;
  text.replace(text.find("[8, 12]"), 7, "8");
  llvm::Expected<ModelConfig> c = parseModelConfig(text, "c.yaml", false);
  ASSERT_TRUE(bool(c)) << llvm::toString(c.takeError());
  EXPECT_EQ(c->imageWidth, 8);
}

TEST(ConfigParser, UnknownKeySuggestsTheNearestAndGivesTheLine) {
  std::string text = std::string(kValidYaml) + "widht: 3\n";
  std::string e = errorOf(text);
  EXPECT_NE(e.find("c.yaml:11: unknown key 'widht'; did you mean 'width'?"),
            std::string::npos)
      << e;
}

TEST(ConfigParser, WrongTypesNameTheKey) {
  std::string text = kValidYaml;
  text.replace(text.find("depth: 2"), 8, "depth: six");
  EXPECT_NE(errorOf(text).find("key 'depth' must be an integer"),
            std::string::npos);
  std::string quoted = kValidYaml;
  quoted.replace(quoted.find("width: 32"), 9, "width: \"32\"");
  EXPECT_NE(errorOf(quoted).find("the string \"32\""), std::string::npos)
      << errorOf(quoted);
  std::string list = kValidYaml;
  list.replace(list.find("[8, 12]"), 7, "[8, 12, 3]");
  EXPECT_NE(
      errorOf(list).find("image_size' must be an integer or a list [H, W]"),
      std::string::npos);
  EXPECT_NE(errorOf(R"({"width": 32.5})", true)
                .find("key 'width' must be an integer"),
            std::string::npos);
}

TEST(ConfigParser, MissingKeysAreListedWithTheFix) {
  std::string e = errorOf("width: 32\n");
  EXPECT_NE(e.find("missing key 'depth': add `depth: <value>`"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("missing key 'image_size'"), std::string::npos);
}

TEST(ConfigParser, ValidityRulesApply) {
  std::string text = kValidYaml;
  text.replace(text.find("heads: 4"), 8, "heads: 5");
  EXPECT_NE(errorOf(text).find("width 32 is not divisible by heads 5"),
            std::string::npos);
}

TEST(ConfigParser, SyntaxErrorsAndOddDocumentsAreErrors) {
  EXPECT_NE(errorOf("width: [1, 2\n"), "");
  EXPECT_NE(errorOf("").find("empty"), std::string::npos);
  EXPECT_NE(errorOf("- 1\n- 2\n").find("mapping"), std::string::npos);
  EXPECT_NE(errorOf(std::string(kValidYaml) + "---\nwidth: 3\n")
                .find("several YAML documents"),
            std::string::npos);
  EXPECT_NE(errorOf("{\"width\": ", true).find("invalid JSON"),
            std::string::npos);
  EXPECT_NE(
      errorOf(std::string(kValidYaml) + "width: 64\n").find("given twice"),
      std::string::npos);
}

// Found by the config fuzzer: a JSON number beyond int64 was cast to one.
TEST(ConfigParser, JsonNumbersBeyondInt64AreErrorsNotOverflows) {
  for (const char *value : {"3e28", "-3e28", "1e400"}) {
    std::string text = std::string("{\"channels\": ") + value + "}";
    EXPECT_NE(errorOf(text, true).find("key 'channels' must be an integer"),
              std::string::npos)
        << value << ": " << errorOf(text, true);
  }
}

TEST(ConfigParser, PresetsAreValidAndResolveByName) {
  ASSERT_EQ(modelPresets().front().name, "aim-fmnist");
  for (const ModelConfig &c : modelPresets())
    EXPECT_TRUE(validateModelConfig(c).empty()) << c.name;
  llvm::Expected<ModelConfig> c = loadModelConfig("aim-7b");
  ASSERT_TRUE(bool(c));
  EXPECT_EQ(c->width, 4096);
  EXPECT_EQ(c->depth, 32);
  EXPECT_EQ(c->headWidth, 2048);
  EXPECT_EQ(c->headDepth, 12);
  llvm::Expected<ModelConfig> missing = loadModelConfig("aim-9z");
  ASSERT_FALSE(bool(missing));
  EXPECT_NE(llvm::toString(missing.takeError()).find("neither a preset"),
            std::string::npos);
}

TEST(ConfigParser, DamagedConfigsNeverCrash) {
  // Truncations and random byte flips of a valid YAML and JSON config: each
  // parse returns a config or an error message.
  const std::string json =
      R"({"image_size": [8, 12], "channels": 3, "patch_size": 4, "width": 32,
          "depth": 2, "heads": 4, "mlp_ratio": 4, "head_width": 24,
          "head_depth": 2})";
  std::mt19937 rng(11);
  for (auto [text, isJson] :
       {std::pair<std::string, bool>{kValidYaml, false}, {json, true}}) {
    int errors = 0;
    auto attempt = [&](const std::string &bytes) {
      llvm::Expected<ModelConfig> c =
          parseModelConfig(bytes, isJson ? "c.json" : "c.yaml", isJson);
      if (!c) {
        EXPECT_FALSE(llvm::toString(c.takeError()).empty());
        ++errors;
      }
    };
    for (size_t length = 0; length < text.size(); ++length)
      attempt(text.substr(0, length));
    for (int trial = 0; trial < 2000; ++trial) {
      std::string bytes = text;
      for (int f = 0; f <= trial % 3; ++f)
        bytes[rng() % bytes.size()] = static_cast<char>(rng() % 128);
      attempt(bytes);
    }
    EXPECT_GT(errors, 0);
  }
}
