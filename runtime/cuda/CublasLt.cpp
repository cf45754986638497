//===- CublasLt.cpp - the step's GEMMs through cuBLASLt, loaded with dlopen -===//
#include "runtime/cuda/CublasLt.h"

#include "runtime/cuda/OpenLibrary.h"

#include <cstdlib>
#include <dlfcn.h>
#include <vector>

namespace aim::rt {

StatusOr<std::unique_ptr<CublasLt>> CublasLt::open(CudaDriver &driver,
                                                   GemmPrecision precision) {
  std::string errors;
  void *library = openLibrary(
      "AIMC_CUBLASLT",
      {"libcublasLt.so.13", "/usr/local/cuda/lib64/libcublasLt.so.13",
       "libcublasLt.so.12", "libcublasLt.so"},
      errors);
  if (!library)
    return Status::error("--device cuda: cannot load cuBLASLt, which runs the "
                         "step's GEMMs (" +
                         errors + "); install CUDA's cuBLAS or set "
                                  "AIMC_CUBLASLT");
  std::unique_ptr<CublasLt> lt(new CublasLt);
  lt->library = library;
  lt->driver = &driver;
  lt->computeType = precision == GemmPrecision::TF32
                        ? CUBLAS_COMPUTE_32F_FAST_TF32
                    : precision == GemmPrecision::BF16
                        ? CUBLAS_COMPUTE_32F_FAST_16BF
                        : CUBLAS_COMPUTE_32F;
#define AIM_CUBLASLT_RESOLVE(name)                                             \
  lt->name = reinterpret_cast<decltype(lt->name)>(dlsym(library, #name));      \
  if (!lt->name)                                                               \
    return Status::error("--device cuda: cuBLASLt has no " #name);
  AIM_CUBLASLT_FUNCTIONS(AIM_CUBLASLT_RESOLVE)
#undef AIM_CUBLASLT_RESOLVE
  if (Status s = lt->check(lt->cublasLtCreate(&lt->handle), "cublasLtCreate");
      !s)
    return s;
  if (Status s = driver.check(
          driver.cuMemAlloc(&lt->workspace, kCublasLtWorkspaceBytes),
          "allocating cuBLASLt's workspace");
      !s)
    return s;
  return lt;
}

CublasLt::~CublasLt() {
  for (auto &[shape, p] : plans) {
    cublasLtMatrixLayoutDestroy(p.x);
    cublasLtMatrixLayoutDestroy(p.y);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
  }
  if (workspace)
    driver->cuMemFree(workspace);
  if (handle)
    cublasLtDestroy(handle);
  // The library stays loaded (as the driver does).
}

Status CublasLt::check(cublasStatus_t status, const std::string &what) const {
  if (status == CUBLAS_STATUS_SUCCESS)
    return Status::ok();
  const char *name = cublasLtGetStatusName ? cublasLtGetStatusName(status)
                                           : nullptr;
  return Status::error(what + ": " +
                       (name ? name : "cuBLAS status " + std::to_string(status)));
}

StatusOr<CublasLt::Plan *> CublasLt::plan(const Shape &shape) {
  auto it = plans.find(shape);
  if (it != plans.end())
    return &it->second;
  auto [transposeA, transposeB, m, n, k, lda, ldb, ldc, batch, strideA, strideB,
        strideC, bf16Operands] = shape;
  const cudaDataType operandType = bf16Operands ? CUDA_R_16BF : CUDA_R_32F;
  Plan p;
  // Column-major view: C^T (n x m) = op(B)^T (n x k) op(A)^T (k x m). The
  // row-major B (k x n, or n x k when transposed) read column-major is B^T
  // (or B); so each operand keeps its flag and its layout's rows and
  // columns are its row-major columns and rows.
  cublasOperation_t opX = transposeB ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opY = transposeA ? CUBLAS_OP_T : CUBLAS_OP_N;
  std::string what = "cuBLASLt plan for a " + std::to_string(m) + "x" +
                     std::to_string(n) + "x" + std::to_string(k) + " GEMM";
  if (bf16Operands)
    what += " of bfloat16 operands";
  if (Status s = check(cublasLtMatmulDescCreate(
                           &p.desc,
                           bf16Operands ? CUBLAS_COMPUTE_32F : computeType,
                           CUDA_R_32F),
                       what);
      !s)
    return s;
  cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opX,
                                 sizeof(opX));
  cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opY,
                                 sizeof(opY));
  Status made = check(
      cublasLtMatrixLayoutCreate(&p.x, operandType, transposeB ? k : n,
                                 transposeB ? n : k, ldb),
      what);
  if (made)
    made = check(cublasLtMatrixLayoutCreate(&p.y, operandType,
                                            transposeA ? m : k,
                                            transposeA ? k : m, lda),
                 what);
  if (made)
    made = check(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, n, m, ldc), what);
  // Batches: the layouts of the column-major view (x: B, y: A) each with
  // the count and its operand's stride.
  auto batched = [&](cublasLtMatrixLayout_t layout, int64_t stride) {
    int32_t count = static_cast<int32_t>(batch);
    return check(cublasLtMatrixLayoutSetAttribute(
                     layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                     sizeof(count)),
                 what) &&
           check(cublasLtMatrixLayoutSetAttribute(
                     layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                     &stride, sizeof(stride)),
                 what);
  };
  if (made && batch > 1)
    made =
        batched(p.x, strideB) && batched(p.y, strideA) && batched(p.c, strideC)
            ? Status::ok()
            : Status::error(what + ": cannot describe a batch of " +
                            std::to_string(batch));
  cublasLtMatmulPreference_t preference = nullptr;
  if (made)
    made = check(cublasLtMatmulPreferenceCreate(&preference), what);
  if (made) {
    uint64_t bytes = kCublasLtWorkspaceBytes;
    cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes,
        sizeof(bytes));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    made = check(cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.x, p.y, p.c,
                                                p.c, preference, 1, &result,
                                                &found),
                 what);
    if (made && found == 0)
      made = Status::error(what + ": cuBLASLt has no algorithm for it");
    p.algo = result.algo;
  }
  if (preference)
    cublasLtMatmulPreferenceDestroy(preference);
  if (!made) {
    for (cublasLtMatrixLayout_t l : {p.x, p.y, p.c})
      if (l)
        cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(p.desc);
    return made;
  }
  return &(plans[shape] = p);
}

Status CublasLt::sgemm(CUstream stream, bool transposeA, bool transposeB,
                       int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b,
                       int64_t ldb, float beta, float *c, int64_t ldc) {
  return sgemmStridedBatched(stream, transposeA, transposeB, m, n, k, alpha, a,
                             lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

Status CublasLt::sgemmStridedBatched(
    CUstream stream, bool transposeA, bool transposeB, int64_t m, int64_t n,
    int64_t k, float alpha, const float *a, int64_t lda, int64_t strideA,
    const float *b, int64_t ldb, int64_t strideB, float beta, float *c,
    int64_t ldc, int64_t strideC, int64_t batch) {
  return matmul(stream,
                {transposeA, transposeB, m, n, k, lda, ldb, ldc, batch, strideA,
                 strideB, strideC, false},
                alpha, a, b, beta, c);
}

Status CublasLt::gemmBf16StridedBatched(
    CUstream stream, bool transposeA, bool transposeB, int64_t m, int64_t n,
    int64_t k, float alpha, const void *a, int64_t lda, int64_t strideA,
    const void *b, int64_t ldb, int64_t strideB, float beta, float *c,
    int64_t ldc, int64_t strideC, int64_t batch) {
  return matmul(stream,
                {transposeA, transposeB, m, n, k, lda, ldb, ldc, batch, strideA,
                 strideB, strideC, true},
                alpha, a, b, beta, c);
}

Status CublasLt::matmul(CUstream stream, const Shape &shape, float alpha,
                        const void *a, const void *b, float beta, float *c) {
  Shape key = shape;
  int64_t batch = std::get<8>(key);
  if (batch < 1)
    return Status::error("a batch of " + std::to_string(batch) + " GEMMs");
  if (batch == 1) // one plan per shape, batched or not
    std::get<9>(key) = std::get<10>(key) = std::get<11>(key) = 0;
  StatusOr<Plan *> p = plan(key);
  if (!p)
    return p.status();
  auto [transposeA, transposeB, m, n, k, lda, ldb, ldc, count, strideA,
        strideB, strideC, bf16Operands] = key;
  return check(cublasLtMatmul(handle, (*p)->desc, &alpha, b, (*p)->x, a,
                              (*p)->y, &beta, c, (*p)->c, c, (*p)->c,
                              &(*p)->algo, reinterpret_cast<void *>(workspace),
                              kCublasLtWorkspaceBytes, stream),
               "cublasLtMatmul (" + std::to_string(batch) + " x " +
                   std::to_string(m) + "x" + std::to_string(n) + "x" +
                   std::to_string(k) +
                   (bf16Operands ? ", bfloat16 operands)" : ")"));
}

} // namespace aim::rt
