//===- FakeCublasLt.cpp - cuBLASLt on the CPU, for tests ------------------===//
//
// libfakecublaslt.so stands in for libcublasLt.so.13 (AIMC_CUBLASLT=...).
// With the fake driver device memory is host memory, so this one computes
// for real: D = alpha op(A) op(B) + beta C with cuBLASLt's column-major
// meaning of layouts (rows, columns, leading dimension) and of TRANSA/TRANSB.
// It rejects operands whose layouts do not fit together, the mistake a
// row-major caller makes. The fast compute types round each operand as the
// tensor cores do before multiplying (TF32: 10 explicit significand bits,
// bfloat16: 7; to nearest, ties to even). A and B may be bfloat16 themselves
// (CUDA_R_16BF layouts: aimc --gemm-operands bf16); C and D are float32, D
// apart from C or not; CUBLASLT_EPILOGUE_BIAS adds a bias to each row of D.
// FAKE_CUBLASLT_LOG=FILE logs each GEMM with its compute type and operands.
// FAKE_CUBLASLT_SKIP_COMPUTE=1 checks and logs but computes nothing: to
// count a large model's launches and bytes a step (bench --per-kernel),
// where multiplying on the CPU would take hours.
//
//===----------------------------------------------------------------------===//
#include <cublasLt.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {
struct Layout {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;  // CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT
  int64_t stride = 0; // CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET
};
struct Desc {
  cublasOperation_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const float *bias = nullptr; // CUBLASLT_MATMUL_DESC_BIAS_POINTER
};

/// `x` rounded to `keep` explicit significand bits (of float's 23).
float roundSignificand(float x, int keep) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  int drop = 23 - keep;
  uint32_t half = (1u << (drop - 1)) - 1 + ((bits >> drop) & 1);
  bits = (bits + half) & ~((1u << drop) - 1);
  std::memcpy(&x, &bits, 4);
  return x;
}

float operand(float x, cublasComputeType_t compute) {
  return compute == CUBLAS_COMPUTE_32F_FAST_TF32   ? roundSignificand(x, 10)
         : compute == CUBLAS_COMPUTE_32F_FAST_16BF ? roundSignificand(x, 7)
                                                   : x;
}

/// Element `i` of a matrix of `type` (float32 or bfloat16) at `base`.
float element(const void *base, cudaDataType type, int64_t i) {
  if (type == CUDA_R_32F)
    return static_cast<const float *>(base)[i];
  uint32_t bits = uint32_t(static_cast<const uint16_t *>(base)[i]) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

const char *computeName(cublasComputeType_t compute) {
  return compute == CUBLAS_COMPUTE_32F_FAST_TF32   ? "tf32"
         : compute == CUBLAS_COMPUTE_32F_FAST_16BF ? "bf16"
                                                   : "fp32";
}
std::FILE *gemmLog() {
  static std::FILE *log = [] {
    const char *path = std::getenv("FAKE_CUBLASLT_LOG");
    return path ? std::fopen(path, "w") : nullptr;
  }();
  return log;
}
} // namespace

#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
  *h = reinterpret_cast<cublasLtHandle_t>(0x10);
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasLtDestroy(cublasLtHandle_t) {
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT const char *cublasLtGetStatusName(cublasStatus_t s) {
  return s == CUBLAS_STATUS_INVALID_VALUE ? "CUBLAS_STATUS_INVALID_VALUE"
                                          : "CUBLAS_STATUS_(fake)";
}
EXPORT cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d,
                                               cublasComputeType_t compute,
                                               cudaDataType_t scale) {
  if ((compute != CUBLAS_COMPUTE_32F &&
       compute != CUBLAS_COMPUTE_32F_FAST_TF32 &&
       compute != CUBLAS_COMPUTE_32F_FAST_16BF) ||
      scale != CUDA_R_32F)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  auto *desc = new Desc;
  desc->compute = compute;
  *d = reinterpret_cast<cublasLtMatmulDesc_t>(desc);
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete reinterpret_cast<Desc *>(d);
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t
cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                               cublasLtMatmulDescAttributes_t a,
                               const void *value, size_t size) {
  auto *desc = reinterpret_cast<Desc *>(d);
  if ((a == CUBLASLT_MATMUL_DESC_TRANSA || a == CUBLASLT_MATMUL_DESC_TRANSB) &&
      size == sizeof(cublasOperation_t))
    std::memcpy(a == CUBLASLT_MATMUL_DESC_TRANSA ? &desc->transa
                                                 : &desc->transb,
                value, size);
  else if (a == CUBLASLT_MATMUL_DESC_EPILOGUE && size == sizeof(uint32_t))
    std::memcpy(&desc->epilogue, value, size);
  else if (a == CUBLASLT_MATMUL_DESC_BIAS_POINTER &&
           size == sizeof(const float *))
    std::memcpy(&desc->bias, value, size);
  else
    return CUBLAS_STATUS_INVALID_VALUE;
  if (desc->epilogue != CUBLASLT_EPILOGUE_DEFAULT &&
      desc->epilogue != CUBLASLT_EPILOGUE_BIAS)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l,
                                                 cudaDataType type,
                                                 uint64_t rows, uint64_t cols,
                                                 int64_t ld) {
  if ((type != CUDA_R_32F && type != CUDA_R_16BF) ||
      ld < static_cast<int64_t>(rows))
    return CUBLAS_STATUS_INVALID_VALUE; // column-major: ld >= rows
  *l = reinterpret_cast<cublasLtMatrixLayout_t>(
      new Layout{type, rows, cols, ld});
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasLtMatrixLayoutSetAttribute(
    cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a,
    const void *value, size_t size) {
  auto *layout = reinterpret_cast<Layout *>(l);
  if (a == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && size == sizeof(int32_t))
    std::memcpy(&layout->batch, value, size);
  else if (a == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET &&
           size == sizeof(int64_t))
    std::memcpy(&layout->stride, value, size);
  else
    return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete reinterpret_cast<Layout *>(l);
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t
cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
  *p = reinterpret_cast<cublasLtMatmulPreference_t>(0x11);
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t
cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t) {
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasLtMatmulPreferenceSetAttribute(
    cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
    const void *, size_t) {
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
    cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
    cublasLtMatmulPreference_t, int requested,
    cublasLtMatmulHeuristicResult_t results[], int *found) {
  if (requested < 1)
    return CUBLAS_STATUS_INVALID_VALUE;
  std::memset(&results[0], 0, sizeof(results[0]));
  *found = 1;
  return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasLtMatmul(
    cublasLtHandle_t, cublasLtMatmulDesc_t computeDesc, const void *alpha,
    const void *a, cublasLtMatrixLayout_t aDesc, const void *b,
    cublasLtMatrixLayout_t bDesc, const void *beta, const void *c,
    cublasLtMatrixLayout_t cDesc, void *d, cublasLtMatrixLayout_t dDesc,
    const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t) {
  const Desc &desc = *reinterpret_cast<Desc *>(computeDesc);
  const Layout &la = *reinterpret_cast<Layout *>(aDesc);
  const Layout &lb = *reinterpret_cast<Layout *>(bDesc);
  const Layout &lc = *reinterpret_cast<Layout *>(cDesc);
  const Layout &ld = *reinterpret_cast<Layout *>(dDesc);
  bool ta = desc.transa == CUBLAS_OP_T, tb = desc.transb == CUBLAS_OP_T;
  uint64_t m = ta ? la.cols : la.rows, k = ta ? la.rows : la.cols;
  uint64_t kb = tb ? lb.cols : lb.rows, n = tb ? lb.rows : lb.cols;
  if (k != kb || lc.rows != m || lc.cols != n || ld.rows != m || ld.cols != n)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (la.batch != lb.batch || la.batch != lc.batch || la.batch != ld.batch)
    return CUBLAS_STATUS_INVALID_VALUE;
  // Operands of one type; float32 results.
  if (la.type != lb.type || lc.type != CUDA_R_32F || ld.type != CUDA_R_32F)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool biased = desc.epilogue == CUBLASLT_EPILOGUE_BIAS;
  if (biased && !desc.bias)
    return CUBLAS_STATUS_INVALID_VALUE; // the bias epilogue without a bias
  float al = *static_cast<const float *>(alpha),
        be = *static_cast<const float *>(beta);
  static const bool skipCompute = std::getenv("FAKE_CUBLASLT_SKIP_COMPUTE");
  for (int32_t g = 0; g < (skipCompute ? 0 : la.batch); ++g) {
    const int64_t offsetA = g * la.stride, offsetB = g * lb.stride;
    const float *C = static_cast<const float *>(c) + g * lc.stride;
    float *D = static_cast<float *>(d) + g * ld.stride;
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t i = 0; i < m; ++i) {
        double sum = 0;
        for (uint64_t l = 0; l < k; ++l) {
          float x = operand(
              element(a, la.type,
                      offsetA + (ta ? l + i * la.ld : i + l * la.ld)),
              desc.compute);
          float y = operand(
              element(b, lb.type,
                      offsetB + (tb ? j + l * lb.ld : l + j * lb.ld)),
              desc.compute);
          sum += double(x) * y;
        }
        // As cuBLASLt: with beta 0, C is not read (it may hold anything);
        // the bias (one value a row of the column-major D) is added last.
        double value = al * sum + (be == 0 ? 0.0f : be * C[i + j * lc.ld]);
        if (biased)
          value += desc.bias[i];
        D[i + j * ld.ld] = float(value);
      }
  }
  if (std::FILE *log = gemmLog()) {
    std::fprintf(log, "gemm %s%llux%llux%llu %c%c %s%s%s%s\n",
                 la.batch > 1 ? (std::to_string(la.batch) + " x ").c_str() : "",
                 static_cast<unsigned long long>(m),
                 static_cast<unsigned long long>(n),
                 static_cast<unsigned long long>(k), ta ? 'T' : 'N',
                 tb ? 'T' : 'N', computeName(desc.compute),
                 la.type == CUDA_R_16BF ? ", bf16 operands" : "",
                 biased ? ", bias" : "", c != d ? ", C apart from D" : "");
    std::fflush(log);
  }
  return CUBLAS_STATUS_SUCCESS;
}
