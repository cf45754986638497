//===- CudaGemmTest.cpp - aim-run's cuBLASLt GEMMs against a CPU reference -===//
//
// The GPU backend's GEMMs are row-major cblas_sgemm calls that aim-run turns
// into column-major cuBLASLt calls (runtime/cuda/CublasLt.h). Here they run
// against the test doubles in test/fake-cuda -- a driver whose device memory
// is host memory and a cuBLASLt that computes on the CPU with cuBLASLt's
// column-major meaning -- so the operand swap, the layouts and the
// transposition flags are checked against a plain row-major reference for
// every combination, on shapes where a mix-up cannot cancel out.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CublasLt.h"
#include "runtime/cuda/CudaDriver.h"

#include <gtest/gtest.h>

#include <map>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace aim::rt;

namespace {
class CudaGemm : public ::testing::Test {
protected:
  void SetUp() override {
    setenv("AIMC_CUDA_DRIVER", AIM_FAKE_CUDA_DRIVER, 1);
    setenv("AIMC_CUBLASLT", AIM_FAKE_CUBLASLT, 1);
    auto d = CudaDriver::open();
    ASSERT_TRUE(d) << d.status().message();
    driver = std::move(*d);
    auto lt = CublasLt::open(*driver);
    ASSERT_TRUE(lt) << lt.status().message();
    gemms = std::move(*lt);
  }
  std::unique_ptr<CudaDriver> driver;
  std::unique_ptr<CublasLt> gemms;
};

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = scale * float((i * 7) % 11) - 0.5f * scale * float(i % 3);
  return v;
}
} // namespace

TEST_F(CudaGemm, RowMajorMatchesReferenceForEveryTransposition) {
  const int64_t m = 3, n = 5, k = 4;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Row-major storage: A is m x k (k x m transposed), B is k x n (n x k).
      std::vector<float> a = ramp(m * k, 0.5f), b = ramp(k * n, 0.25f),
                         c = ramp(m * n, 1.0f);
      int64_t lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
      std::vector<float> want = c;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double sum = 0;
          for (int64_t l = 0; l < k; ++l)
            sum += double(ta ? a[l * lda + i] : a[i * lda + l]) *
                   double(tb ? b[j * ldb + l] : b[l * ldb + j]);
          want[i * ldc + j] = float(sum + c[i * ldc + j]);
        }
      aim::Status s = gemms->sgemm(nullptr, ta, tb, m, n, k, 1.0f, a.data(),
                                   lda, b.data(), ldb, 1.0f, c.data(), ldc);
      ASSERT_TRUE(s) << s.message();
      for (int64_t i = 0; i < m * n; ++i)
        EXPECT_NEAR(c[i], want[i], 1e-5f)
            << "transA " << ta << " transB " << tb << " element " << i;
    }
  EXPECT_EQ(gemms->cachedShapes(), 4u);
  // The same shape again reuses its plan.
  std::vector<float> a(m * k, 1), b(k * n, 1), c(m * n, 0);
  ASSERT_TRUE(gemms->sgemm(nullptr, false, false, m, n, k, 1, a.data(), k,
                           b.data(), n, 0, c.data(), n));
  EXPECT_EQ(gemms->cachedShapes(), 4u);
  EXPECT_FLOAT_EQ(c[0], float(k));
}

// Attention's layout: per head h, A_h = rows of [N, heads * dh] at column
// h * dh (lda = heads * dh, stride dh), B_h likewise transposed, C_h its own
// [N, N] block (stride N * N).
TEST_F(CudaGemm, StridedBatchMatchesOneGemmPerHead) {
  const int64_t n = 3, heads = 2, dh = 4, width = heads * dh;
  std::vector<float> q = ramp(n * width, 0.5f), k = ramp(n * width, 0.25f);
  std::vector<float> c(heads * n * n, 0.0f), want(heads * n * n, 0.0f);
  for (int64_t h = 0; h < heads; ++h)
    ASSERT_TRUE(gemms->sgemm(nullptr, false, true, n, n, dh, 1.0f,
                             q.data() + h * dh, width, k.data() + h * dh, width,
                             1.0f, want.data() + h * n * n, n));
  aim::Status s = gemms->sgemmStridedBatched(
      nullptr, false, true, n, n, dh, 1.0f, q.data(), width, dh, k.data(),
      width, dh, 1.0f, c.data(), n, n * n, heads);
  ASSERT_TRUE(s) << s.message();
  for (int64_t i = 0; i < heads * n * n; ++i)
    EXPECT_FLOAT_EQ(c[i], want[i]) << "element " << i;
  // The second head is not the first one again.
  EXPECT_NE(c[0], c[n * n]);
  EXPECT_FALSE(gemms->sgemmStridedBatched(nullptr, false, true, n, n, dh, 1.0f,
                                          q.data(), width, dh, k.data(), width,
                                          dh, 1.0f, c.data(), n, n * n, 0));
}

// bfloat16 A and B (aimc --gemm-operands bf16), float32 C: the same batched
// products as float32 operands holding the same values, in separate plans.
TEST_F(CudaGemm, Bf16OperandsMatchTheirFloat32Values) {
  const int64_t n = 3, heads = 2, dh = 4, width = heads * dh;
  auto toBf16 = [](const std::vector<float> &v) {
    std::vector<uint16_t> out;
    for (float x : v) {
      uint32_t bits;
      std::memcpy(&bits, &x, 4);
      out.push_back(uint16_t(bits >> 16)); // ramp values are exact in bf16
    }
    return out;
  };
  std::vector<float> q = ramp(n * width, 0.5f), k = ramp(n * width, 0.25f);
  std::vector<uint16_t> q16 = toBf16(q), k16 = toBf16(k);
  std::vector<float> c(heads * n * n, 1.0f), want(heads * n * n, 1.0f);
  ASSERT_TRUE(gemms->sgemmStridedBatched(nullptr, false, true, n, n, dh, 1.0f,
                                         q.data(), width, dh, k.data(), width,
                                         dh, 1.0f, want.data(), n, n * n,
                                         heads));
  CublasLt::Gemm g;
  g.transposeB = true;
  g.m = g.n = n;
  g.k = dh;
  g.beta = 1.0f;
  g.a = q16.data();
  g.b = k16.data();
  g.lda = g.ldb = width;
  g.c = g.d = c.data();
  g.ldc = g.ldd = n;
  g.bf16Operands = true;
  g.batch = heads;
  g.strideA = g.strideB = dh;
  g.strideC = n * n;
  aim::Status s = gemms->gemm(nullptr, g);
  ASSERT_TRUE(s) << s.message();
  for (int64_t i = 0; i < heads * n * n; ++i)
    EXPECT_FLOAT_EQ(c[i], want[i]) << "element " << i;
  EXPECT_EQ(gemms->cachedShapes(), 2u);
}

// The epilogue aimcCudaGemm asks for: D = A B^T + C + bias with C (the
// residual) apart from D and the bias on every column j, against a
// row-major reference; and the same without C (beta 0, C not read).
TEST_F(CudaGemm, BiasEpilogueAndCApartFromD) {
  const int64_t m = 3, n = 5, k = 4;
  std::vector<float> a = ramp(m * k, 0.5f), w = ramp(n * k, 0.25f),
                     residual = ramp(m * n, 1.0f), bias = ramp(n, 2.0f);
  for (float beta : {1.0f, 0.0f}) {
    std::vector<float> d(m * n, -7.0f);
    CublasLt::Gemm g;
    g.transposeB = true;
    g.m = m;
    g.n = n;
    g.k = k;
    g.beta = beta;
    g.a = a.data();
    g.lda = k;
    g.b = w.data();
    g.ldb = k;
    g.c = residual.data();
    g.ldc = n;
    g.d = d.data();
    g.ldd = n;
    g.bias = bias.data();
    aim::Status s = gemms->gemm(nullptr, g);
    ASSERT_TRUE(s) << s.message();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double want = bias[j] + beta * residual[i * n + j];
        for (int64_t l = 0; l < k; ++l)
          want += double(a[i * k + l]) * w[j * k + l];
        EXPECT_NEAR(d[i * n + j], want, 1e-5) << "beta " << beta << " (" << i
                                              << ", " << j << ")";
      }
  }
  EXPECT_EQ(residual, ramp(m * n, 1.0f)); // C only read
}

TEST(CudaGemmPrecision, FastComputeTypesRoundTheOperands) {
  setenv("AIMC_CUDA_DRIVER", AIM_FAKE_CUDA_DRIVER, 1);
  setenv("AIMC_CUBLASLT", AIM_FAKE_CUBLASLT, 1);
  auto driver = CudaDriver::open();
  ASSERT_TRUE(driver) << driver.status().message();
  // 1 + 2^-10 survives float32 and TF32 (10 significand bits), not
  // bfloat16 (7): the precision reaches cuBLASLt as its compute type.
  const float x = 1.0f + 0x1p-10f, one = 1.0f;
  std::map<GemmPrecision, float> want = {{GemmPrecision::F32, x},
                                         {GemmPrecision::TF32, x},
                                         {GemmPrecision::BF16, 1.0f}};
  for (auto [precision, expected] : want) {
    auto lt = CublasLt::open(**driver, precision);
    ASSERT_TRUE(lt) << lt.status().message();
    float c = 0;
    ASSERT_TRUE((*lt)->sgemm(nullptr, false, false, 1, 1, 1, 1.0f, &x, 1,
                             &one, 1, 0.0f, &c, 1));
    EXPECT_EQ(c, expected) << gemmPrecisionName(precision);
  }
  for (const char *name : {"fp32", "tf32", "bf16"}) {
    auto parsed = parseGemmPrecision(name);
    ASSERT_TRUE(parsed);
    EXPECT_STREQ(gemmPrecisionName(*parsed), name);
  }
  auto bad = parseGemmPrecision("fp8");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("fp32, tf32 or bf16"),
            std::string::npos);
}

TEST(CudaGemmErrors, MissingLibraryIsAClearError) {
  setenv("AIMC_CUDA_DRIVER", AIM_FAKE_CUDA_DRIVER, 1);
  setenv("AIMC_CUBLASLT", "/nonexistent/libcublasLt.so.13", 1);
  auto driver = CudaDriver::open();
  ASSERT_TRUE(driver);
  auto lt = CublasLt::open(**driver);
  ASSERT_FALSE(lt);
  EXPECT_NE(lt.status().message().find("cannot load cuBLASLt"),
            std::string::npos)
      << lt.status().message();
}
