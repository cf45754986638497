//===- CudaProgramTest.cpp - staging and resident arguments, by value -----===//
//
// CudaProgram against the fake driver (test/fake-cuda), with launcher code
// that computes on the host (FakeStepLauncher.c): the values that come back
// show that inputs are copied in on every call, results out, and arguments
// updated in place stay on the device until fetched -- the same results as
// the host program, which updates them in the caller's buffers.
//
//===----------------------------------------------------------------------===//
#include "common/FileIO.h"
#include "common/Philox.h"
#include "runtime/EntryCall.h"
#include "runtime/Program.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

using namespace aim;
using namespace aim::rt;
namespace fb = aim::aimx;

namespace {
/// An artifact with one entry point whose code (for the host and as GPU
/// launcher code) is FakeStepLauncher.c; `sharedW`: its GPU code may write
/// w' into w's buffer (and its loss says whether it was handed that).
std::string fakeArtifact(bool sharedW = false) {
  StatusOr<std::string> code = readWholeFile(AIM_FAKE_STEP_LAUNCHER);
  EXPECT_TRUE(code) << code.status().message();
  std::vector<uint8_t> bytes(code->begin(), code->end());
  flatbuffers::FlatBufferBuilder b;
  std::vector<int64_t> four = {4}, scalar = {};
  auto tensor = [&](const char *name, fb::Role role,
                    const std::vector<int64_t> &shape) {
    return fb::CreateTensorDirect(b, name, role, fb::ElementType::F32, &shape);
  };
  std::vector<flatbuffers::Offset<fb::Tensor>> args = {
      tensor("w", fb::Role::Parameter, four),
      tensor("x", fb::Role::Input, four)};
  std::vector<flatbuffers::Offset<fb::Tensor>> results = {
      tensor("loss", fb::Role::Output, scalar),
      tensor("w", fb::Role::Output, four)};
  std::vector<flatbuffers::Offset<fb::EntryPoint>> entries = {
      fb::CreateEntryPointDirect(
          b, "train_step",
          sharedW ? "train_step_in_place_packed" : "train_step_packed", &args,
          &results, 0)};
  std::vector<flatbuffers::Offset<fb::Parameter>> params = {
      fb::CreateParameterDirect(b, "w", &four, fb::InitKind::Zeros, false)};
  uint64_t checksum = fnv1a64(bytes.data(), bytes.size());
  auto host = fb::CreateHostCodeDirect(b, "x86-64", &bytes, checksum);
  auto launcher = fb::CreateHostCodeDirect(b, "x86-64", &bytes, checksum);
  std::vector<flatbuffers::Offset<fb::GpuKernel>> kernels;
  std::vector<flatbuffers::Offset<flatbuffers::String>> sharing;
  if (sharedW)
    sharing.push_back(b.CreateString("w"));
  std::vector<flatbuffers::Offset<fb::InPlaceResults>> inPlace = {
      fb::CreateInPlaceResultsDirect(b, "train_step", &sharing)};
  auto gpu = fb::CreateGpuCodeDirect(b, "sm_90a", launcher, &kernels,
                                     /*host_touches_memory=*/true, 67e12,
                                     3.35e12, &inPlace);
  auto root = fb::CreateArtifactDirect(
      b, static_cast<uint32_t>(fb::SchemaVersion::Current), "test", "fake",
      "{}", 1, 1, 2, 2, 2, "iid", &params, &entries, host, gpu);
  fb::FinishArtifactBuffer(b, root);
  return std::string(reinterpret_cast<const char *>(b.GetBufferPointer()),
                     b.GetSize());
}

float at(const HostTensor &t, int i) {
  return reinterpret_cast<const float *>(t.bytes.data())[i];
}

/// Three calls, x changing between them; returns the losses.
std::vector<float> runThreeSteps(EntryCall &step, HostTensor &w, HostTensor &x) {
  std::vector<float> losses;
  std::map<std::string, HostTensor *> arguments = {{"w", &w}, {"x", &x}};
  for (int call = 0; call < 3; ++call) {
    for (int i = 0; i < 4; ++i)
      reinterpret_cast<float *>(x.bytes.data())[i] = float(call + 1) * (i + 1);
    Status s = step(arguments);
    EXPECT_TRUE(s) << s.message();
    losses.push_back(at(step.result(0), 0));
  }
  return losses;
}
} // namespace

TEST(CudaProgram, InputsResultsAndResidentArgumentsByValue) {
  setenv("AIMC_CUDA_DRIVER", AIM_FAKE_CUDA_DRIVER, 1);
  setenv("AIMC_CUBLASLT", AIM_FAKE_CUBLASLT, 1);
  StatusOr<Artifact> artifact = verifyArtifact(fakeArtifact(), "fake.aimx");
  ASSERT_TRUE(artifact) << artifact.status().message();
  // x = (c+1)(1, 2, 3, 4) at call c: w after the calls is 6 (1, 2, 3, 4);
  // the losses are sum(w) before each call: 0, 10, 30.
  const std::vector<float> wantLosses = {0, 10, 30};
  for (DeviceKind device : {DeviceKind::Host, DeviceKind::Cuda}) {
    SCOPED_TRACE(device == DeviceKind::Host ? "host" : "cuda");
    StatusOr<std::unique_ptr<Program>> program =
        loadProgram(*artifact, device);
    ASSERT_TRUE(program) << program.status().message();
    StatusOr<EntryCall> step =
        EntryCall::prepare(*artifact, **program, "train_step");
    ASSERT_TRUE(step) << step.status().message();
    step->updateArgumentsInPlace();
    HostTensor w = HostTensor::zeros(DType::F32, {4}),
               x = HostTensor::zeros(DType::F32, {4});
    EXPECT_EQ(runThreeSteps(*step, w, x), wantLosses);
    if (device == DeviceKind::Cuda) {
      // Resident: the host copy is the one read on the first call...
      EXPECT_EQ(at(w, 3), 0.0f);
      // ... and a host write is not seen by later calls (documented).
    }
    ASSERT_TRUE(step->syncArgumentsToHost());
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(at(w, i), 6.0f * (i + 1)) << "element " << i;
  }
}

TEST(CudaProgram, WithoutInPlaceEveryArgumentIsCopiedEachCall) {
  setenv("AIMC_CUDA_DRIVER", AIM_FAKE_CUDA_DRIVER, 1);
  setenv("AIMC_CUBLASLT", AIM_FAKE_CUBLASLT, 1);
  StatusOr<Artifact> artifact = verifyArtifact(fakeArtifact(), "fake.aimx");
  ASSERT_TRUE(artifact);
  StatusOr<std::unique_ptr<Program>> program =
      loadProgram(*artifact, DeviceKind::Cuda);
  ASSERT_TRUE(program) << program.status().message();
  StatusOr<EntryCall> step =
      EntryCall::prepare(*artifact, **program, "train_step");
  ASSERT_TRUE(step);
  HostTensor w = HostTensor::fromDoubles(DType::F32, {4}, {1, 1, 1, 1}),
             x = HostTensor::zeros(DType::F32, {4});
  // w never changes on the host: every loss is 4, and the result is w + x.
  EXPECT_EQ(runThreeSteps(*step, w, x), std::vector<float>({4, 4, 4}));
  EXPECT_EQ(at(step->result(1), 3), 1.0f + 3 * 4);
}

// An in-place result the artifact lets share its argument's buffer: the
// device hands the code w's buffer for w' (the loss shows it: +1000), keeps
// no buffer of its own for it and copies nothing after the step; the values
// are those of the host, which never shares.
TEST(CudaProgram, InPlaceResultsShareTheirArgumentsBuffers) {
  setenv("AIMC_CUDA_DRIVER", AIM_FAKE_CUDA_DRIVER, 1);
  setenv("AIMC_CUBLASLT", AIM_FAKE_CUBLASLT, 1);
  StatusOr<Artifact> artifact =
      verifyArtifact(fakeArtifact(/*sharedW=*/true), "fake.aimx");
  ASSERT_TRUE(artifact) << artifact.status().message();
  for (DeviceKind device : {DeviceKind::Host, DeviceKind::Cuda}) {
    SCOPED_TRACE(device == DeviceKind::Host ? "host" : "cuda");
    StatusOr<std::unique_ptr<Program>> program =
        loadProgram(*artifact, device);
    ASSERT_TRUE(program) << program.status().message();
    StatusOr<EntryCall> step =
        EntryCall::prepare(*artifact, **program, "train_step");
    ASSERT_TRUE(step) << step.status().message();
    HostTensor w = HostTensor::zeros(DType::F32, {4}),
               x = HostTensor::zeros(DType::F32, {4});
    // Not in place yet: w' has a buffer of its own.
    std::map<std::string, HostTensor *> arguments = {{"w", &w}, {"x", &x}};
    ASSERT_TRUE((*step)(arguments));
    EXPECT_EQ(at(step->result(0), 0), 0.0f);
    step->updateArgumentsInPlace();
    float shared = device == DeviceKind::Cuda ? 1000 : 0;
    EXPECT_EQ(runThreeSteps(*step, w, x),
              std::vector<float>({shared, 10 + shared, 30 + shared}));
    ASSERT_TRUE(step->syncArgumentsToHost());
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(at(w, i), 6.0f * (i + 1)) << "element " << i;
  }
}
