//===- CublasLt.h - the step's GEMMs through cuBLASLt, loaded with dlopen -*- C++ -*-===//
//
// The GPU backend calls `aimcCudaGemm` for every GEMM (row-major D = op(A)
// op(B) + beta C + bias, cblas_sgemm's arguments with D, the bias and the
// operands' type added; strided batches through aimcCudaSgemmStridedBatched;
// codegen/kernels/GemmCalls.h). aim-run
// runs it with cuBLASLt, opened with dlopen like the driver
// (libcublasLt.so.13, or $AIMC_CUBLASLT). Row-major C is column-major C^T,
// so the call computes C^T = op(B)^T op(A)^T: the operands swap places and
// keep their transposition flags. Float32 in, out and accumulated
// (CUBLAS_COMPUTE_32F, no TF32: the results are checked against the host's
// float32 GEMMs) unless a GemmPrecision asks for tensor cores: TF32 or
// bfloat16 multiplies of the float32 operands, float32 accumulation and
// results (CUBLAS_COMPUTE_32F_FAST_TF32 / _FAST_16BF); or bfloat16 A and B
// themselves. A bias is cuBLASLt's CUBLASLT_EPILOGUE_BIAS. Each shape's
// descriptors and algorithm are chosen on its
// first call -- before any CUDA graph capture, which happens on the second
// call of an entry point -- and cached.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CUDA_CUBLASLT_H
#define AIMC_RUNTIME_CUDA_CUBLASLT_H

#include "runtime/GemmPrecision.h"
#include "runtime/cuda/CudaDriver.h"

#include <cublasLt.h>

#include <map>
#include <memory>
#include <tuple>

namespace aim::rt {

#define AIM_CUBLASLT_FUNCTIONS(X)                                              \
  X(cublasLtCreate)                                                            \
  X(cublasLtDestroy)                                                           \
  X(cublasLtGetStatusName)                                                     \
  X(cublasLtMatmulDescCreate)                                                  \
  X(cublasLtMatmulDescDestroy)                                                 \
  X(cublasLtMatmulDescSetAttribute)                                            \
  X(cublasLtMatrixLayoutCreate)                                                \
  X(cublasLtMatrixLayoutDestroy)                                               \
  X(cublasLtMatrixLayoutSetAttribute)                                          \
  X(cublasLtMatmulPreferenceCreate)                                            \
  X(cublasLtMatmulPreferenceDestroy)                                           \
  X(cublasLtMatmulPreferenceSetAttribute)                                      \
  X(cublasLtMatmulAlgoGetHeuristic)                                            \
  X(cublasLtMatmul)

class CublasLt {
public:
  /// Opens the library and creates a handle; `driver` must outlive it.
  static StatusOr<std::unique_ptr<CublasLt>>
  open(CudaDriver &driver, GemmPrecision precision = GemmPrecision::F32);
  ~CublasLt();
  CublasLt(const CublasLt &) = delete;
  CublasLt &operator=(const CublasLt &) = delete;

  /// One row-major GEMM (or a strided batch of them):
  /// D[m, n] = alpha op(A) op(B) + beta C + bias (bias[j] added to column j;
  /// C is not read when beta is 0; C may be D).
  struct Gemm {
    bool transposeA = false, transposeB = false;
    int64_t m = 0, n = 0, k = 0;
    float alpha = 1, beta = 0;
    const void *a = nullptr, *b = nullptr; // float32, or bfloat16 if bf16
    int64_t lda = 0, ldb = 0;
    const float *c = nullptr;
    int64_t ldc = 0;
    float *d = nullptr;
    int64_t ldd = 0;
    const float *bias = nullptr; // CUBLASLT_EPILOGUE_BIAS when set
    /// A and B are bfloat16 (aimc --gemm-operands bf16): CUDA_R_16BF
    /// layouts, CUBLAS_COMPUTE_32F whatever the GemmPrecision.
    bool bf16Operands = false;
    int64_t batch = 1, strideA = 0, strideB = 0, strideC = 0; // D's is C's

    /// cblas_sgemm's C = alpha op(A) op(B) + beta C: D is C.
    static Gemm inPlace(bool transposeA, bool transposeB, int64_t m,
                        int64_t n, int64_t k, float alpha, const void *a,
                        int64_t lda, const void *b, int64_t ldb, float beta,
                        float *c, int64_t ldc) {
      Gemm g;
      g.transposeA = transposeA;
      g.transposeB = transposeB;
      g.m = m;
      g.n = n;
      g.k = k;
      g.alpha = alpha;
      g.beta = beta;
      g.a = a;
      g.lda = lda;
      g.b = b;
      g.ldb = ldb;
      g.c = g.d = c;
      g.ldc = g.ldd = ldc;
      return g;
    }
    /// `batch` of them, the i-th operands `i * stride` elements on.
    Gemm &strided(int64_t count, int64_t strideOfA, int64_t strideOfB,
                  int64_t strideOfC) {
      batch = count;
      strideA = strideOfA;
      strideB = strideOfB;
      strideC = strideOfC;
      return *this;
    }
  };
  /// Enqueues `g` on `stream`.
  Status gemm(CUstream stream, const Gemm &g);

  /// Row-major C[m, n] = alpha op(A) op(B) + beta C, enqueued on `stream`.
  Status sgemm(CUstream stream, bool transposeA, bool transposeB, int64_t m,
               int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
  /// `batch` such GEMMs in one call, the i-th operands `i * stride`
  /// elements past the first ones (attention's heads).
  Status sgemmStridedBatched(CUstream stream, bool transposeA, bool transposeB,
                             int64_t m, int64_t n, int64_t k, float alpha,
                             const float *a, int64_t lda, int64_t strideA,
                             const float *b, int64_t ldb, int64_t strideB,
                             float beta, float *c, int64_t ldc, int64_t strideC,
                             int64_t batch);

  /// Shapes seen so far (each with its descriptors and algorithm).
  size_t cachedShapes() const { return plans.size(); }

#define AIM_CUBLASLT_DECLARE(name) decltype(&::name) name = nullptr;
  AIM_CUBLASLT_FUNCTIONS(AIM_CUBLASLT_DECLARE)
#undef AIM_CUBLASLT_DECLARE

private:
  CublasLt() = default;
  Status check(cublasStatus_t status, const std::string &what) const;

  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t x = nullptr, y = nullptr, c = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // What a plan depends on: a Gemm without its pointers and scalars.
  using Shape = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, bool, bool>;
  static Shape shapeOf(const Gemm &g);
  StatusOr<Plan *> plan(const Gemm &g);

  void *library = nullptr;
  CudaDriver *driver = nullptr;
  cublasComputeType_t computeType = CUBLAS_COMPUTE_32F;
  cublasLtHandle_t handle = nullptr;
  CUdeviceptr workspace = 0;
  std::map<Shape, Plan> plans;
};

/// The workspace cuBLASLt may use per GEMM.
inline constexpr size_t kCublasLtWorkspaceBytes = 32 << 20;

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_CUBLASLT_H
