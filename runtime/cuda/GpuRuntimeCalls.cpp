//===- GpuRuntimeCalls.cpp - what GPU launcher code calls in aim-run ------===//
#include "runtime/cuda/GpuRuntimeCalls.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace aim::rt {

GpuCallState &gpuCallState() {
  static GpuCallState state;
  return state;
}

namespace {
bool check(CUresult result, const std::string &what) {
  GpuCallState &s = gpuCallState();
  Status status = s.driver->check(result, what);
  if (!status)
    s.fail(status.message());
  return status.isOk();
}

/// Adds the time of the launch between the events, once the stream is done.
void collectKernelTime() {
  GpuCallState &s = gpuCallState();
  if (!s.timed)
    return;
  float ms = 0;
  if (check(s.driver->cuEventElapsedTime(&ms, s.start, s.stop),
            "cuEventElapsedTime")) {
    KernelTime &t = s.kernelTimes[s.kernelNames[s.timed]];
    ++t.launches;
    t.milliseconds += ms;
  }
  s.timed = nullptr;
}
} // namespace

std::string describe(const LaunchShape &l) {
  auto dims = [](const int64_t(&d)[3]) {
    return std::to_string(d[0]) + "x" + std::to_string(d[1]) + "x" +
           std::to_string(d[2]);
  };
  return "grid " + dims(l.grid) + ", block " + dims(l.block);
}

std::string outsideDeviceLimits(const LaunchShape &l) {
  const DeviceLimits &d = gpuCallState().limits;
  const char *axis = "xyz";
  int64_t threads = 1;
  for (int i = 0; i < 3; ++i) {
    if (l.block[i] < 1 || l.block[i] > d.block[i])
      return std::string("block.") + axis[i] + " = " +
             std::to_string(l.block[i]) + " is outside the device's 1.." +
             std::to_string(d.block[i]);
    if (l.grid[i] < 1 || l.grid[i] > d.grid[i])
      return std::string("grid.") + axis[i] + " = " +
             std::to_string(l.grid[i]) + " is outside the device's 1.." +
             std::to_string(d.grid[i]);
    threads *= l.block[i];
  }
  if (threads > d.threadsPerBlock)
    return std::to_string(threads) + " threads a block; the device allows " +
           std::to_string(d.threadsPerBlock);
  return "";
}

size_t declaredParameters(CUfunction f) {
  CudaDriver &d = *gpuCallState().driver;
  size_t count = 0, offset = 0, size = 0;
  CUresult r = CUDA_SUCCESS;
  while (count < 4096 &&
         (r = d.cuFuncGetParamInfo(f, count, &offset, &size)) == CUDA_SUCCESS)
    ++count;
  // Past the last parameter the driver answers CUDA_ERROR_INVALID_VALUE;
  // anything else (a driver before 12.4) means it cannot tell.
  return r == CUDA_ERROR_INVALID_VALUE ? count : size_t(-1);
}

std::string explainLaunchFailure(CUfunction f, int32_t sharedBytes,
                                 void **params, size_t paramCount) {
  GpuCallState &s = gpuCallState();
  CudaDriver &d = *s.driver;
  std::string out;
  int v = 0;
  if (d.cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, f) ==
      CUDA_SUCCESS)
    out += "; the kernel allows " + std::to_string(v) + " threads a block";
  if (d.cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, f) == CUDA_SUCCESS)
    out += "; it uses " + std::to_string(v) + " registers";
  if (size_t declared = declaredParameters(f); declared != size_t(-1))
    out += "; it declares " + std::to_string(declared) + " parameters";
  out += "; the launch passed " + std::to_string(paramCount) + " parameters" +
         (params ? "" : " (no array)") + ", " + std::to_string(sharedBytes) +
         " bytes of dynamic shared memory";
  CUcontext current = nullptr;
  if (d.cuCtxGetCurrent(&current) == CUDA_SUCCESS && current != d.context())
    out += "; this thread's current CUDA context is not aim-run's";
  return out;
}

} // namespace aim::rt

using aim::rt::gpuCallState;
using aim::rt::GpuCallState;

// Upstream MLIR's names and signatures (gpu-to-llvm and the GPU dialect's
// LLVM IR translation emit these calls).
extern "C" {

void *mgpuModuleLoad(void *data, size_t) {
  GpuCallState &s = gpuCallState();
  if (!s.ok())
    return nullptr;
  CUmodule module = nullptr;
  aim::rt::check(s.driver->cuModuleLoadData(&module, data),
                 "loading the artifact's cubin (cuModuleLoadData)");
  return module;
}

void mgpuModuleUnload(void *module) {
  GpuCallState &s = gpuCallState();
  if (s.driver && module)
    s.driver->cuModuleUnload(static_cast<CUmodule>(module));
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  GpuCallState &s = gpuCallState();
  if (!s.ok() || !module)
    return nullptr;
  auto key = std::make_pair(static_cast<CUmodule>(module), std::string(name));
  auto it = s.functions.find(key);
  if (it != s.functions.end())
    return it->second;
  CUfunction function = nullptr;
  if (!aim::rt::check(s.driver->cuModuleGetFunction(
                          &function, static_cast<CUmodule>(module), name),
                      std::string("cuModuleGetFunction(") + name + ")"))
    return nullptr;
  s.functions[key] = function;
  s.kernelNames[function] = name;
  return function;
}

void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t sharedBytes, void *stream,
                      void **params, void **extra, size_t paramCount) {
  GpuCallState &s = gpuCallState();
  if (!s.ok() || !function)
    return;
  auto f = static_cast<CUfunction>(function);
  aim::rt::LaunchShape shape{{gridX, gridY, gridZ}, {blockX, blockY, blockZ}};
  auto what = [&] { // built only for an error
    return "launching " + s.kernelNames[f] + " (" + aim::rt::describe(shape) +
           ")";
  };
  if (std::string bad = aim::rt::outsideDeviceLimits(shape); !bad.empty()) {
    s.fail(what() + ": " + bad + " (a code generator bug: please report it)");
    return;
  }
  // The driver reads as many parameter pointers as the cubin declares: a
  // launcher passing fewer makes it read past the array.
  if (s.parametersChecked.insert(f).second) {
    size_t declared = aim::rt::declaredParameters(f);
    if (declared != size_t(-1) && declared != paramCount) {
      s.fail(what() + ": the launcher passes " + std::to_string(paramCount) +
             " parameters but the kernel declares " + std::to_string(declared) +
             " (a code generator bug: please report it)");
      return;
    }
  }
  // Past 48 KB a kernel takes dynamic shared memory only where allowed
  // (the generated GEMMs' pipeline stages).
  constexpr int32_t kDefaultDynamicShared = 48 * 1024;
  if (sharedBytes > kDefaultDynamicShared &&
      s.dynamicSharedLimit[f] < sharedBytes) {
    if (!aim::rt::check(s.driver->cuFuncSetAttribute(
                            f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                            sharedBytes),
                        "allowing " + std::to_string(sharedBytes) +
                            " bytes of dynamic shared memory to " +
                            s.kernelNames[f] + " (cuFuncSetAttribute)"))
      return;
    s.dynamicSharedLimit[f] = sharedBytes;
  }
  if (s.profiling && !aim::rt::check(s.driver->cuEventRecord(s.start, s.stream),
                                     "cuEventRecord"))
    return;
  CUresult launched = s.driver->cuLaunchKernel(
      f, static_cast<unsigned>(gridX), static_cast<unsigned>(gridY),
      static_cast<unsigned>(gridZ), static_cast<unsigned>(blockX),
      static_cast<unsigned>(blockY), static_cast<unsigned>(blockZ),
      static_cast<unsigned>(sharedBytes),
      stream ? static_cast<CUstream>(stream) : s.stream, params, extra);
  if (launched != CUDA_SUCCESS) {
    // The driver's words first, then what it knows of the kernel.
    s.fail(s.driver->check(launched, what()).message() +
           aim::rt::explainLaunchFailure(f, sharedBytes, params, paramCount));
    return;
  }
  if (s.profiling && aim::rt::check(s.driver->cuEventRecord(s.stop, s.stream),
                                    "cuEventRecord"))
    s.timed = f;
}

/// Every launch goes to aim-run's stream; the launcher code's streams are
/// names for it.
void *mgpuStreamCreate() { return gpuCallState().stream; }

void mgpuStreamDestroy(void *) {}

/// The launcher code synchronises after each launch, for host-side
/// leftovers of the step that may read what the kernel wrote. When the
/// artifact says it has none, aim-run waits once at the end of the call.
void mgpuStreamSynchronize(void *) {
  GpuCallState &s = gpuCallState();
  if (!s.ok() || !(s.hostTouchesMemory || s.profiling))
    return;
  if (aim::rt::check(s.driver->cuStreamSynchronize(s.stream),
                     "cuStreamSynchronize (after " +
                         (s.timed ? s.kernelNames[s.timed] : "a launch") + ")"))
    aim::rt::collectKernelTime();
}

/// Temporaries: from CudaProgram's pool (device memory, or managed memory
/// when the launcher code's own loads and stores reach them).
/// After an error (no kernel runs any more) the rest of the call gets host
/// memory, so that its scalar leftovers do not write through a null pointer.
void *_mlir_memref_to_llvm_alloc(size_t bytes) {
  GpuCallState &s = gpuCallState();
  void *block = s.ok() ? s.temporaries->get(bytes) : nullptr;
  if (!block && s.ok())
    s.fail("out of GPU memory allocating a temporary of " +
           std::to_string(bytes) + " bytes (" +
           std::to_string(s.temporaries->bytesInUse() >> 20) + " MiB in use)");
  if (!block) {
    block = std::calloc(1, bytes ? bytes : 1);
    s.hostFallbacks.insert(block);
  }
  return block;
}

void _mlir_memref_to_llvm_free(void *block) {
  GpuCallState &s = gpuCallState();
  if (!block)
    return;
  if (s.hostFallbacks.erase(block)) {
    std::free(block);
    return;
  }
  if (!s.temporaries || !s.temporaries->put(block))
    s.fail("the launcher code freed a block aim-run did not allocate");
}

} // extern "C"

namespace {

/// Enqueues `gemm` (a cuBLASLt call) on aim-run's stream, timed under
/// `name` like a kernel when profiling.
template <typename Gemm>
void runGemm(const char *caller, int order, const std::string &name,
             Gemm gemm) {
  GpuCallState &s = gpuCallState();
  if (!s.ok())
    return;
  constexpr int kRowMajor = 101;
  if (order != kRowMajor || !s.gemms) {
    s.fail(std::string(caller) + ": " +
           (order != kRowMajor ? "not a row-major GEMM"
                               : "cuBLASLt is not loaded"));
    return;
  }
  if (s.profiling && !aim::rt::check(s.driver->cuEventRecord(s.start, s.stream),
                                     "cuEventRecord"))
    return;
  aim::Status done = gemm(*s.gemms, s.stream);
  if (!done) {
    s.fail(done.message());
    return;
  }
  if (!s.profiling)
    return;
  if (aim::rt::check(s.driver->cuEventRecord(s.stop, s.stream),
                     "cuEventRecord") &&
      aim::rt::check(s.driver->cuStreamSynchronize(s.stream),
                     "cuStreamSynchronize (after " + name + ")")) {
    float ms = 0;
    if (aim::rt::check(s.driver->cuEventElapsedTime(&ms, s.start, s.stop),
                       "cuEventElapsedTime")) {
      aim::rt::KernelTime &t = s.kernelTimes[name];
      ++t.launches;
      t.milliseconds += ms;
    }
  }
}

constexpr int kTrans = 112;

std::string shapeName(int m, int n, int k) {
  return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

} // namespace

/// A GEMM of the step (cblas_sgemm's signature and meaning, row-major),
/// through cuBLASLt on aim-run's stream; timed like a kernel when profiling.
extern "C" void aimcCudaSgemm(int order, int transA, int transB, int m, int n,
                              int k, float alpha, const float *a, int lda,
                              const float *b, int ldb, float beta, float *c,
                              int ldc) {
  runGemm("aimcCudaSgemm", order, "cublasLt gemm " + shapeName(m, n, k),
          [&](aim::rt::CublasLt &lt, CUstream stream) {
            return lt.sgemm(stream, transA == kTrans, transB == kTrans, m, n, k,
                            alpha, a, lda, b, ldb, beta, c, ldc);
          });
}

/// A GEMM of the step with its epilogue (codegen/kernels/GemmCalls.h):
/// row-major D = alpha op(A) op(B) + beta C + bias (bias[j] on column j;
/// null: none), A and B float32 (`operands` 0) or bfloat16 (1).
extern "C" void aimcCudaGemm(int operands, int order, int transA, int transB,
                             int m, int n, int k, float alpha, const void *a,
                             int lda, const void *b, int ldb, float beta,
                             const float *c, int ldc, float *d, int ldd,
                             const float *bias) {
  runGemm("aimcCudaGemm", order,
          std::string("cublasLt ") + (operands == 1 ? "bf16 " : "") +
              (bias ? "bias " : "") + "gemm " + shapeName(m, n, k),
          [&](aim::rt::CublasLt &lt, CUstream stream) {
            if (operands != 0 && operands != 1)
              return aim::Status::error(
                  "aimcCudaGemm: operand type " + std::to_string(operands) +
                  " is neither float32 (0) nor bfloat16 (1)");
            auto g = aim::rt::CublasLt::Gemm::inPlace(
                transA == kTrans, transB == kTrans, m, n, k, alpha, a, lda, b,
                ldb, beta, d, ldd);
            g.c = c; // the residual, apart from D
            g.ldc = ldc;
            g.bias = bias;
            g.bf16Operands = operands == 1;
            return lt.gemm(stream, g);
          });
}

/// The tensor map (CUtensorMap, 16 words into `out`) of the bfloat16
/// row-major matrix [rows, cols] at `base`, boxes of boxRows x boxCols,
/// 128-byte swizzle, zeros past the edges: what the generated GEMMs'
/// TMA copies read (codegen/kernels/WgmmaGemm.h). A host function, no
/// stream work: a captured step bakes the words into its launches.
extern "C" void aimcCudaTensorMap(void *out, void *base, int64_t rows,
                                  int64_t cols, int32_t boxRows,
                                  int32_t boxCols) {
  GpuCallState &s = gpuCallState();
  auto *map = static_cast<CUtensorMap *>(out);
  std::memset(map, 0, sizeof(CUtensorMap));
  if (!s.ok())
    return;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols),
                              static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(boxCols),
                             static_cast<cuuint32_t>(boxRows)};
  const cuuint32_t elementStrides[2] = {1, 1};
  aim::rt::check(
      s.driver->cuTensorMapEncodeTiled(
          map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, base, dims, strides, box,
          elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
      "encoding the tensor map of a generated GEMM's " + std::to_string(rows) +
          " x " + std::to_string(cols) + " operand (cuTensorMapEncodeTiled)");
}

/// aimcCudaSgemmStridedBatched with A and B bfloat16.
extern "C" void
aimcCudaGemmBf16StridedBatched(int order, int transA, int transB, int m, int n,
                               int k, float alpha, const void *a, int lda,
                               int64_t strideA, const void *b, int ldb,
                               int64_t strideB, float beta, float *c, int ldc,
                               int64_t strideC, int batch) {
  runGemm("aimcCudaGemmBf16StridedBatched", order,
          "cublasLt bf16 gemm " + std::to_string(batch) + " x " +
              shapeName(m, n, k),
          [&](aim::rt::CublasLt &lt, CUstream stream) {
            auto g = aim::rt::CublasLt::Gemm::inPlace(
                         transA == kTrans, transB == kTrans, m, n, k, alpha, a,
                         lda, b, ldb, beta, c, ldc)
                         .strided(batch, strideA, strideB, strideC);
            g.bf16Operands = true;
            return lt.gemm(stream, g);
          });
}

/// `batch` GEMMs of one shape (attention's heads), the i-th operands `i *
/// stride` elements past the first (codegen/kernels/GemmCalls.h).
extern "C" void aimcCudaSgemmStridedBatched(int order, int transA, int transB,
                                            int m, int n, int k, float alpha,
                                            const float *a, int lda,
                                            int64_t strideA, const float *b,
                                            int ldb, int64_t strideB,
                                            float beta, float *c, int ldc,
                                            int64_t strideC, int batch) {
  runGemm("aimcCudaSgemmStridedBatched", order,
          "cublasLt gemm " + std::to_string(batch) + " x " + shapeName(m, n, k),
          [&](aim::rt::CublasLt &lt, CUstream stream) {
            return lt.sgemmStridedBatched(
                stream, transA == kTrans, transB == kTrans, m, n, k, alpha, a,
                lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch);
          });
}
