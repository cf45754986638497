//===- CommonTest.cpp - common/: files, randomness, configs, init ---------===//
#include "common/FileIO.h"
#include "common/ModelConfig.h"
#include "common/Npy.h"
#include "common/ParameterInit.h"
#include "common/Philox.h"
#include "common/PrefixSampling.h"
#include "common/Safetensors.h"
#include "common/Sharding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <set>

using namespace aim;

namespace {
std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/aimc-common-" + name;
}

ModelConfig smallConfig() {
  ModelConfig c;
  c.imageHeight = 8;
  c.imageWidth = 12;
  c.channels = 3;
  c.patchSize = 4;
  c.width = 32;
  c.depth = 2;
  c.heads = 4;
  c.mlpRatio = 4;
  c.headWidth = 24;
  c.headDepth = 2;
  return c;
}
} // namespace

TEST(Philox, KnownAnswersOfRandom123) {
  // Known-answer vectors of Philox4x32-10 from Random123's kat_vectors.
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                          {0xffffffff, 0xffffffff}),
            (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                          {0xa4093822, 0x299f31d0}),
            (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Safetensors, RoundTripKeepsOrderNamesShapesAndBits) {
  NamedTensors tensors;
  tensors.emplace_back(
      "b.weight",
      HostTensor::fromDoubles(DType::F32, {2, 3}, {1, 2, 3, 4, 5, 0.1}));
  tensors.emplace_back("a.bias",
                       HostTensor::fromDoubles(DType::F64, {2}, {0.1, -7}));
  tensors.emplace_back("k",
                       HostTensor::fromDoubles(DType::I64, {3}, {1, 2, 3}));
  std::string path = tempPath("roundtrip.safetensors");
  ASSERT_TRUE(writeSafetensors(path, tensors).isOk());
  StatusOr<NamedTensors> read = readSafetensors(path);
  ASSERT_TRUE(read.isOk()) << read.status().message();
  ASSERT_EQ(read->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*read)[i].first, tensors[i].first);
    EXPECT_EQ((*read)[i].second.dtype, tensors[i].second.dtype);
    EXPECT_EQ((*read)[i].second.shape, tensors[i].second.shape);
    EXPECT_EQ((*read)[i].second.bytes, tensors[i].second.bytes);
  }
}

TEST(Safetensors, TruncatedAndMalformedFilesAreClearErrors) {
  NamedTensors tensors;
  tensors.emplace_back("w",
                       HostTensor::fromDoubles(DType::F32, {4}, {1, 2, 3, 4}));
  std::string path = tempPath("truncated.safetensors");
  ASSERT_TRUE(writeSafetensors(path, tensors).isOk());
  StatusOr<std::string> bytes = readWholeFile(path);
  ASSERT_TRUE(bytes.isOk());
  ASSERT_TRUE(
      writeFileAtomically(path, bytes->substr(0, bytes->size() - 3)).isOk());
  StatusOr<NamedTensors> read = readSafetensors(path);
  ASSERT_FALSE(read.isOk());
  EXPECT_NE(read.status().message().find("truncated"), std::string::npos)
      << read.status().message();

  ASSERT_TRUE(
      writeFileAtomically(path, std::string("\x10\0\0\0\0\0\0\0{nope", 13))
          .isOk());
  read = readSafetensors(path);
  ASSERT_FALSE(read.isOk());
  EXPECT_NE(read.status().message().find("not a valid safetensors"),
            std::string::npos);

  read = readSafetensors(tempPath("does-not-exist.safetensors"));
  ASSERT_FALSE(read.isOk());
  EXPECT_NE(read.status().message().find("cannot open"), std::string::npos);
}

TEST(Npy, RoundTripAndBadHeaders) {
  HostTensor t = HostTensor::fromDoubles(DType::I32, {2, 2}, {1, -2, 3, 4});
  std::string path = tempPath("k.npy");
  ASSERT_TRUE(writeNpy(path, t).isOk());
  StatusOr<HostTensor> read = readNpy(path);
  ASSERT_TRUE(read.isOk()) << read.status().message();
  EXPECT_EQ(read->dtype, DType::I32);
  EXPECT_EQ(read->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(read->bytes, t.bytes);

  HostTensor scalar = HostTensor::fromDoubles(DType::F64, {3}, {1, 2, 3});
  ASSERT_TRUE(writeNpy(path, scalar).isOk());
  read = readNpy(path);
  ASSERT_TRUE(read.isOk());
  EXPECT_EQ(read->shape, (std::vector<int64_t>{3}));

  auto expectError = [&](const std::string &contents, const char *needle) {
    ASSERT_TRUE(writeFileAtomically(path, contents).isOk());
    StatusOr<HostTensor> bad = readNpy(path);
    ASSERT_FALSE(bad.isOk());
    EXPECT_NE(bad.status().message().find(needle), std::string::npos)
        << bad.status().message();
  };
  auto npyWithHeader = [](const std::string &header, size_t dataBytes) {
    std::string s = "\x93NUMPY\x01";
    s += '\0';
    s += static_cast<char>(header.size());
    s += '\0';
    return s + header + std::string(dataBytes, '\0');
  };
  expectError("not an npy file", "magic");
  expectError(npyWithHeader("{'descr': '>f4', 'fortran_order': False, "
                            "'shape': (2,), }",
                            8),
              "not supported");
  expectError(npyWithHeader("{'descr': '<f4', 'fortran_order': True, "
                            "'shape': (2,), }",
                            8),
              "Fortran");
  expectError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (3,), }",
                            8),
              "needs 12 bytes");
}

TEST(PrefixSampling, AntitheticPairsSumToNAndStayInRange) {
  const int64_t n = 49;
  std::vector<int64_t> k =
      samplePrefixLengths(PrefixMode::Antithetic, 5, 3, 0, 64, n);
  std::set<int64_t> distinct;
  for (int64_t i = 0; i < 64; i += 2) {
    EXPECT_EQ(k[i] + k[i + 1], n);
    EXPECT_GE(k[i], 1);
    EXPECT_LE(k[i], n - 1);
    distinct.insert(k[i]);
  }
  EXPECT_GT(distinct.size(), 10u); // not a constant
  // Keyed by global sample index: a rank holding samples 32..63 sees the same.
  std::vector<int64_t> second =
      samplePrefixLengths(PrefixMode::Antithetic, 5, 3, 32, 32, n);
  EXPECT_TRUE(std::equal(second.begin(), second.end(), k.begin() + 32));
  // Another step draws other lengths.
  EXPECT_NE(samplePrefixLengths(PrefixMode::Antithetic, 5, 4, 0, 64, n), k);
}

TEST(PrefixSampling, IidCoversTheWholeRange) {
  std::vector<int64_t> k =
      samplePrefixLengths(PrefixMode::Iid, 1, 0, 0, 4000, 5);
  std::vector<int> counts(6, 0);
  for (int64_t v : k) {
    ASSERT_GE(v, 1);
    ASSERT_LE(v, 4);
    ++counts[v];
  }
  for (int v = 1; v <= 4; ++v)
    EXPECT_NEAR(counts[v], 1000, 150) << v; // 4.7 standard deviations
}

TEST(ParameterInit, XavierUniformZerosAndOnes) {
  ModelConfig c = smallConfig();
  NamedTensors params = initParameters(c, 0, DType::F64);
  ASSERT_EQ(params.size(), parameterSpecs(c).size());
  for (const auto &[name, t] : params) {
    std::vector<double> v = t.toDoubles();
    if (name.find("norm") != std::string::npos &&
        name.find(".weight") != std::string::npos) {
      for (double x : v)
        EXPECT_EQ(x, 1.0) << name;
    } else if (name.find(".bias") != std::string::npos) {
      for (double x : v)
        EXPECT_EQ(x, 0.0) << name;
    }
  }
  // qkv [96, 32]: bound sqrt(6 / (32 + 96)); the conv weight [32, 3, 4, 4]
  // as [32, 48]: fan_in 48, fan_out 32 * 16 = 512 (PyTorch's receptive field).
  EXPECT_DOUBLE_EQ(xavierBound({96, 32}), std::sqrt(6.0 / 128));
  EXPECT_DOUBLE_EQ(xavierBound({32, 3, 4, 4}), std::sqrt(6.0 / (48 + 512)));
  const HostTensor &qkv = params[6].second;
  ASSERT_EQ(params[6].first, "trunk.blocks.0.attn.qkv.weight");
  std::vector<double> v = qkv.toDoubles();
  double bound = xavierBound({96, 32}), mean = 0, sq = 0;
  for (double x : v) {
    EXPECT_LE(std::abs(x), bound);
    mean += x;
    sq += x * x;
  }
  mean /= v.size();
  // Uniform on [-a, a]: mean 0, variance a^2 / 3 (3072 draws).
  EXPECT_NEAR(mean, 0, 0.05 * bound);
  EXPECT_NEAR(sq / v.size(), bound * bound / 3, 0.1 * bound * bound / 3);
}

TEST(ParameterInit, DeterministicPerNameAndSeed) {
  ModelConfig c = smallConfig();
  std::vector<ParamSpec> specs = parameterSpecs(c);
  const ParamSpec &qkv0 = specs[6], &qkv1 = specs[14];
  ASSERT_EQ(qkv1.name, "trunk.blocks.1.attn.qkv.weight");
  EXPECT_EQ(initialValue(qkv0, 3, 17), initialValue(qkv0, 3, 17));
  EXPECT_NE(initialValue(qkv0, 3, 17), initialValue(qkv1, 3, 17));
  EXPECT_NE(initialValue(qkv0, 3, 17), initialValue(qkv0, 4, 17));
  // Element i is the same whoever draws it: a slice equals the whole's slice.
  NamedTensors whole = initParameters(c, 3, DType::F64);
  EXPECT_EQ(whole[6].second.toDoubles()[100], initialValue(qkv0, 3, 100));
  // The bulk path (initialTensor) rounds the same values to float.
  std::vector<double> f32 = initParameters(c, 3)[6].second.toDoubles();
  for (size_t i = 0; i < f32.size(); ++i)
    ASSERT_EQ(f32[i], static_cast<float>(initialValue(qkv0, 3, int64_t(i))));
}

TEST(ModelConfig, PresetSizesMatchAimMd) {
  // AIM.md: trunk 0.68 B for aim-600m (12 D^2 per block), head about 0.41 B.
  ModelConfig c;
  c.imageHeight = c.imageWidth = 224;
  c.channels = 3;
  c.patchSize = 14;
  c.width = 1536;
  c.depth = 24;
  c.heads = 12;
  c.mlpRatio = 4;
  c.headWidth = 2048;
  c.headDepth = 12;
  EXPECT_TRUE(validateModelConfig(c).empty());
  EXPECT_EQ(c.numPatches(), 256);
  EXPECT_EQ(c.patchValues(), 588);
  EXPECT_EQ(c.headDim(), 128);
  int64_t head = 0;
  for (const ParamSpec &p : parameterSpecs(c))
    if (p.name.rfind("head.", 0) == 0)
      head += elementCount(p.shape);
  EXPECT_NEAR((parameterCount(c) - head) / 1e9, 0.68, 0.005);
  EXPECT_NEAR(head / 1e9, 0.41, 0.005);
}

TEST(ModelConfig, EveryValidityRuleNamesTheKey) {
  auto problems = [](void (*edit)(ModelConfig &), int64_t tp = 1) {
    ModelConfig c = smallConfig();
    edit(c);
    std::vector<std::string> p = validateModelConfig(c, tp);
    return p.empty() ? std::string() : p.front();
  };
  EXPECT_EQ(problems([](ModelConfig &) {}), "");
  EXPECT_NE(problems([](ModelConfig &c) {
              c.patchSize = 5;
            }).find("not divisible by patch_size 5"),
            std::string::npos);
  EXPECT_NE(problems([](ModelConfig &c) {
              c.imageHeight = c.imageWidth = c.patchSize = 4;
            }).find("N >= 2"),
            std::string::npos);
  EXPECT_NE(problems([](ModelConfig &c) {
              c.patchSize = 1;
              c.channels = 1;
            }).find("P >= 2"),
            std::string::npos);
  EXPECT_NE(problems([](ModelConfig &c) {
              c.width = 30;
              c.heads = 3;
            }).find("width 30 must be divisible by 4"),
            std::string::npos);
  EXPECT_NE(problems([](ModelConfig &c) {
              c.headWidth = 22;
            }).find("head_width 22 must be divisible by 4"),
            std::string::npos);
  EXPECT_NE(problems([](ModelConfig &c) {
              c.heads = 5;
            }).find("width 32 is not divisible by heads 5"),
            std::string::npos);
  EXPECT_NE(problems([](ModelConfig &) {}, 8).find("tensor-parallel degree 8"),
            std::string::npos);
  EXPECT_NE(problems([](ModelConfig &c) {
              c.depth = 0;
            }).find("depth must be a positive integer"),
            std::string::npos);
}

// Found by the config fuzzer: channels = 8e18 overflowed P = p^2 * channels.
TEST(ModelConfig, HugeSizesAreErrorsNotOverflows) {
  ModelConfig c = smallConfig();
  c.channels = 8117815538485180643;
  std::vector<std::string> p = validateModelConfig(c);
  ASSERT_FALSE(p.empty());
  EXPECT_NE(p.front().find("channels is 8117815538485180643, beyond the "
                           "largest size aimc accepts (1048576)"),
            std::string::npos)
      << p.front();
  // Each size within its bound, the count beyond 10^12.
  c = smallConfig();
  c.width = c.mlpRatio = c.depth = kMaxConfigSize;
  p = validateModelConfig(c);
  ASSERT_FALSE(p.empty());
  EXPECT_NE(p.back().find("parameters, beyond the 1000000000000"),
            std::string::npos)
      << p.back();
}

TEST(ModelConfig, ParameterCountIsTheSumOfTheSpecs) {
  ModelConfig c = smallConfig();
  c.depth = 3;
  c.headDepth = 2;
  int64_t sum = 0;
  for (const ParamSpec &p : parameterSpecs(c))
    sum += elementCount(p.shape);
  EXPECT_EQ(parameterCount(c), sum);
  EXPECT_EQ(checkedParameterCount(c), sum);
}

// A tensor cut for every rank of a grid and put back together is the tensor.
TEST(Sharding, CutAndPlaceRoundTrip) {
  std::vector<double> values(6 * 4);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<double>(i);
  HostTensor whole = HostTensor::fromDoubles(DType::F32, {6, 4}, values);
  // qkv-like: 3 blocks of 2 rows, each split over tp = 2 (3 rows a tp
  // rank), then the columns split over dp = 2.
  TensorSharding s{0, 3, 1};
  EXPECT_EQ(checkSharding(whole.shape, s, 2, 2), "");
  EXPECT_EQ(partShape(whole.shape, s, 2, 2), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(wholeShape({3, 2}, s, 2, 2), whole.shape);
  HostTensor part = cutTensor(whole, s, {1, 2, 0, 2}); // d = 1, t = 0
  // tp rank 0: rows 0, 2, 4 (first half of each block of 2); dp rank 1:
  // columns 2 and 3.
  EXPECT_EQ(part.toDoubles(),
            (std::vector<double>{2, 3, 10, 11, 18, 19}));
  HostTensor back = HostTensor::zeros(DType::F32, {6, 4});
  for (int64_t rank = 0; rank < 4; ++rank) {
    GridPosition at = GridPosition::ofRank(rank, 2, 2);
    placeTensor(back, cutTensor(whole, s, at), s, at);
  }
  EXPECT_EQ(back.toDoubles(), values);
  EXPECT_NE(checkSharding({6, 4}, {0, 1, -1}, 1, 4), "");
  EXPECT_NE(checkSharding({6, 3}, {0, 3, 1}, 2, 2), "");
}
