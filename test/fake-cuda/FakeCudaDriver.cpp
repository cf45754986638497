//===- FakeCudaDriver.cpp - a CUDA driver without a GPU, for tests --------===//
//
// libfakecuda.so stands in for libcuda.so.1 (AIMC_CUDA_DRIVER=...) so that
// aim-run's CUDA path -- dlopen, cuGetProcAddress, device checks, loading
// the launcher code and its cubin, launches, streams, events, staging,
// temporaries -- runs in CI. It runs no kernel: it checks what it is given
// (the cubin is an ELF for NVIDIA GPUs holding every function asked for;
// launch shapes are legal; parameters are passed; nothing synchronises a
// stream being captured) and logs each launch; a captured graph's replay
// counts its kernels as launches.
//
//   FAKE_CUDA_CC=8.9          the compute capability it reports (default 9.0)
//   FAKE_CUDA_INIT_ERROR=100  cuInit fails with this code
//   FAKE_CUDA_LOG=FILE        one line per launch, a summary at exit
//
//===----------------------------------------------------------------------===//
#include <cuda.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace {

struct Fake {
  std::mutex mutex;
  std::FILE *log = nullptr;
  std::string cubin; // the one module loaded
  std::set<std::string> functions;
  long launches = 0, allocations = 0, frees = 0, modules = 0;
  bool capturing = false;
  std::vector<std::string> captured; // the kernels of the capture in flight
  long graphs = 0, graphNodes = 0, replays = 0;
  std::set<std::string> launched;
  std::map<std::string, int> dynamicShared; // cuFuncSetAttribute's, by kernel
  Fake() {
    if (const char *path = std::getenv("FAKE_CUDA_LOG"))
      log = std::fopen(path, "w");
  }
  ~Fake() {
    if (!log)
      return;
    std::fprintf(log,
                 "summary: %ld launches of %zu kernels, %ld modules, %ld "
                 "allocations, %ld frees; %ld graphs of %ld kernels, %ld "
                 "replays\n",
                 launches, launched.size(), modules, allocations, frees, graphs,
                 graphNodes, replays);
    std::fclose(log);
  }
};
Fake &fake() {
  static Fake f;
  return f;
}

constexpr uint16_t kElfMachineCuda = 190; // EM_CUDA

CUresult cuInitFake(unsigned) {
  if (const char *e = std::getenv("FAKE_CUDA_INIT_ERROR"))
    return static_cast<CUresult>(std::atoi(e));
  return CUDA_SUCCESS;
}
CUresult cuDriverGetVersionFake(int *v) {
  *v = 13000;
  return CUDA_SUCCESS;
}
CUresult cuGetErrorNameFake(CUresult r, const char **s) {
  static const std::map<int, const char *> names = {
      {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE"},
      {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE"},
      {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND"},
      {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE"}};
  auto it = names.find(r);
  *s = it == names.end() ? nullptr : it->second;
  return it == names.end() ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}
CUresult cuGetErrorStringFake(CUresult r, const char **s) {
  *s = r == CUDA_ERROR_NO_DEVICE ? "no CUDA-capable device is detected"
                                 : "fake driver error";
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetCountFake(int *n) {
  const char *devices = std::getenv("FAKE_CUDA_DEVICES");
  *n = devices ? std::atoi(devices) : 1;
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetFake(CUdevice *d, int ordinal) {
  int count = 0;
  cuDeviceGetCountFake(&count);
  *d = ordinal;
  return ordinal >= 0 && ordinal < count ? CUDA_SUCCESS
                                         : CUDA_ERROR_INVALID_DEVICE;
}
CUresult cuDeviceGetNameFake(char *name, int length, CUdevice) {
  std::snprintf(name, length, "Fake GPU (aimc test driver)");
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetAttributeFake(int *v, CUdevice_attribute a, CUdevice) {
  const char *cc = std::getenv("FAKE_CUDA_CC");
  int major = 9, minor = 0;
  if (cc)
    std::sscanf(cc, "%d.%d", &major, &minor);
  // An H100's launch limits (the runtime checks launch shapes against them).
  // FAKE_CUDA_MAX_BLOCK_X: a smaller block.x limit, to test the launch check.
  const char *maxBlockX = std::getenv("FAKE_CUDA_MAX_BLOCK_X");
  if (a == CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X && maxBlockX) {
    *v = std::atoi(maxBlockX);
    return CUDA_SUCCESS;
  }
  *v = a == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR   ? major
       : a == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR ? minor
       : a == CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X ||
               a == CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y ||
               a == CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK
           ? 1024
       : a == CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z ? 64
       : a == CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X  ? 2147483647
       : a == CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y ||
               a == CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z
           ? 65535
           : 0;
  return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRetainFake(CUcontext *c, CUdevice) {
  *c = reinterpret_cast<CUcontext>(0x1);
  return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxReleaseFake(CUdevice) { return CUDA_SUCCESS; }
CUresult cuCtxSetCurrentFake(CUcontext) { return CUDA_SUCCESS; }
CUresult cuCtxSynchronizeFake() { return CUDA_SUCCESS; }
CUresult cuCtxGetCurrentFake(CUcontext *c) {
  *c = reinterpret_cast<CUcontext>(0x1);
  return CUDA_SUCCESS;
}
CUresult cuMemGetInfoFake(size_t *free, size_t *total) {
  *free = *total = size_t(80) << 30;
  return CUDA_SUCCESS;
}
CUresult cuMemAllocManagedFake(CUdeviceptr *p, size_t bytes, unsigned) {
  void *block = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!block)
    return CUDA_ERROR_OUT_OF_MEMORY;
  std::memset(block, 0, bytes);
  *p = reinterpret_cast<CUdeviceptr>(block);
  std::lock_guard<std::mutex> lock(fake().mutex);
  ++fake().allocations;
  return CUDA_SUCCESS;
}
CUresult cuMemAllocFake(CUdeviceptr *p, size_t bytes) {
  return cuMemAllocManagedFake(p, bytes, 0);
}
CUresult cuMemFreeFake(CUdeviceptr p) {
  std::free(reinterpret_cast<void *>(p));
  std::lock_guard<std::mutex> lock(fake().mutex);
  ++fake().frees;
  return CUDA_SUCCESS;
}
CUresult cuMemcpyFake(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  std::memcpy(reinterpret_cast<void *>(dst), reinterpret_cast<void *>(src),
              bytes);
  return CUDA_SUCCESS;
}
CUresult cuModuleLoadDataFake(CUmodule *m, const void *image) {
  const auto *bytes = static_cast<const unsigned char *>(image);
  if (std::memcmp(bytes, "\177ELF", 4) != 0)
    return CUDA_ERROR_INVALID_IMAGE;
  uint16_t machine;
  std::memcpy(&machine, bytes + 18, 2);
  uint64_t sectionOffset;
  uint16_t sectionSize, sectionCount;
  std::memcpy(&sectionOffset, bytes + 40, 8);
  std::memcpy(&sectionSize, bytes + 58, 2);
  std::memcpy(&sectionCount, bytes + 60, 2);
  if (machine != kElfMachineCuda)
    return CUDA_ERROR_INVALID_IMAGE;
  Fake &f = fake();
  f.cubin.assign(reinterpret_cast<const char *>(bytes),
                 sectionOffset + size_t(sectionSize) * sectionCount);
  ++f.modules;
  *m = reinterpret_cast<CUmodule>(0x2);
  return CUDA_SUCCESS;
}
CUresult cuModuleUnloadFake(CUmodule) { return CUDA_SUCCESS; }
CUresult cuModuleGetFunctionFake(CUfunction *fn, CUmodule, const char *name) {
  Fake &f = fake();
  // Kernel names are in the cubin's string table, NUL-terminated.
  std::string key = std::string(name) + '\0';
  if (f.cubin.find(key) == std::string::npos)
    return CUDA_ERROR_NOT_FOUND;
  *fn = reinterpret_cast<CUfunction>(
      const_cast<char *>(f.functions.insert(name).first->c_str()));
  return CUDA_SUCCESS;
}
CUresult cuLaunchKernelFake(CUfunction fn, unsigned gx, unsigned gy,
                            unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned smem, CUstream, void **params,
                            void **extra) {
  // FAKE_CUDA_LAUNCH_ERROR=N: every launch fails with CUresult N.
  if (const char *e = std::getenv("FAKE_CUDA_LAUNCH_ERROR"))
    return static_cast<CUresult>(std::atoi(e));
  if (!fn || gx == 0 || gy == 0 || gz == 0 || bx * by * bz == 0 ||
      bx * by * bz > 1024 || bz > 64 || gy > 65535 || gz > 65535 ||
      (!params && !extra))
    return CUDA_ERROR_INVALID_VALUE;
  Fake &f = fake();
  const char *name = reinterpret_cast<const char *>(fn);
  std::lock_guard<std::mutex> lock(f.mutex);
  // Past 48 KB only what cuFuncSetAttribute allowed.
  auto allowed = f.dynamicShared.find(name);
  if (smem > 48 * 1024 &&
      (allowed == f.dynamicShared.end() || smem > unsigned(allowed->second)))
    return CUDA_ERROR_INVALID_VALUE;
  if (f.capturing) { // recorded into the graph, not run
    f.captured.push_back(name);
    return CUDA_SUCCESS;
  }
  ++f.launches;
  f.launched.insert(name);
  if (f.log)
    std::fprintf(f.log, "launch %s grid %ux%ux%u block %ux%ux%u smem %u\n",
                 name, gx, gy, gz, bx, by, bz, smem);
  return CUDA_SUCCESS;
}
/// The H100's limit: 227 KB of dynamic shared memory a block.
CUresult cuFuncSetAttributeFake(CUfunction fn, CUfunction_attribute a, int v) {
  if (!fn || a != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || v < 0 ||
      v > 227 * 1024)
    return CUDA_ERROR_INVALID_VALUE;
  Fake &f = fake();
  std::lock_guard<std::mutex> lock(f.mutex);
  f.dynamicShared[reinterpret_cast<const char *>(fn)] = v;
  return CUDA_SUCCESS;
}
/// The checks cuTensorMapEncodeTiled makes of a 2-D tiled map (the CUDA
/// driver API's documentation): a 16-byte aligned address, strides that
/// are multiples of 16, boxes of 1 to 256 elements a side, an inner box of
/// at most the swizzle's width; the map filled with a recognisable pattern.
CUresult cuTensorMapEncodeTiledFake(
    CUtensorMap *map, CUtensorMapDataType type, cuuint32_t rank, void *address,
    const cuuint64_t *dims, const cuuint64_t *strides, const cuuint32_t *box,
    const cuuint32_t *elementStrides, CUtensorMapInterleave interleave,
    CUtensorMapSwizzle swizzle, CUtensorMapL2promotion,
    CUtensorMapFloatOOBfill) {
  if (!map || rank != 2 || !address ||
      reinterpret_cast<uintptr_t>(address) % 16 != 0 || strides[0] % 16 != 0 ||
      dims[0] == 0 || dims[1] == 0 || box[0] == 0 || box[0] > 256 ||
      box[1] == 0 || box[1] > 256 || elementStrides[0] != 1 ||
      elementStrides[1] != 1 || interleave != CU_TENSOR_MAP_INTERLEAVE_NONE)
    return CUDA_ERROR_INVALID_VALUE;
  const uint64_t elementBytes =
      type == CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 ? 2 : 4;
  if (swizzle == CU_TENSOR_MAP_SWIZZLE_128B && box[0] * elementBytes > 128)
    return CUDA_ERROR_INVALID_VALUE;
  std::memset(map, 0x5a, sizeof(CUtensorMap));
  return CUDA_SUCCESS;
}
CUresult cuFuncGetAttributeFake(int *v, CUfunction_attribute a, CUfunction) {
  *v = a == CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK ? 1024 : 0;
  return CUDA_SUCCESS;
}
/// The kernel's parameters as the cubin declares them: one EIATTR_KPARAM_INFO
/// (0x17) entry each in its ELF section ".nv.info.<kernel>", an attribute
/// list of {u8 format, u8 attribute, u16 size-or-value} headers, where
/// format 4 (EIFMT_SVAL) is followed by `size` bytes: {u32 index,
/// u16 ordinal, u16 offset, u32 flags (size in bytes at bits 18..31)}.
CUresult cuFuncGetParamInfoFake(CUfunction fn, size_t index, size_t *offset,
                                size_t *size) {
  const std::string &elf = fake().cubin;
  auto read = [&](size_t at, auto &value) {
    std::memcpy(&value, elf.data() + at, sizeof(value));
  };
  uint64_t sections;
  uint16_t entrySize, count, names;
  read(40, sections);
  read(58, entrySize);
  read(60, count);
  read(62, names);
  uint64_t namesOffset;
  read(sections + names * entrySize + 24, namesOffset);
  std::string wanted =
      std::string(".nv.info.") + reinterpret_cast<const char *>(fn);
  for (uint16_t i = 0; i < count; ++i) {
    uint32_t name;
    uint64_t at, bytes;
    read(sections + i * entrySize, name);
    read(sections + i * entrySize + 24, at);
    read(sections + i * entrySize + 32, bytes);
    if (wanted != elf.c_str() + namesOffset + name)
      continue;
    size_t seen = 0;
    for (uint64_t p = at; p + 4 <= at + bytes;) {
      uint8_t format = elf[p], attribute = elf[p + 1];
      uint16_t payload;
      read(p + 2, payload);
      if (format == 4 && attribute == 0x17 && seen++ == index) {
        uint16_t where;
        uint32_t flags;
        read(p + 4 + 6, where);
        read(p + 4 + 8, flags);
        *offset = where;
        *size = flags >> 18;
        return CUDA_SUCCESS;
      }
      p += 4 + (format == 4 ? payload : 0);
    }
    return CUDA_ERROR_INVALID_VALUE; // past the last parameter
  }
  return CUDA_ERROR_NOT_FOUND;
}
CUresult cuStreamCreateFake(CUstream *s, unsigned) {
  *s = reinterpret_cast<CUstream>(0x3);
  return CUDA_SUCCESS;
}
CUresult cuStreamDestroyFake(CUstream) { return CUDA_SUCCESS; }
CUresult cuStreamSynchronizeFake(CUstream) {
  // Not allowed while capturing (the real driver invalidates the capture).
  return fake().capturing ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
                          : CUDA_SUCCESS;
}
CUresult cuStreamQueryFake(CUstream) {
  return fake().capturing ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
                          : CUDA_SUCCESS;
}
CUresult cuStreamWaitEventFake(CUstream, CUevent, unsigned) {
  return CUDA_SUCCESS;
}
CUresult cuMemcpyDtoDAsyncFake(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                               CUstream) {
  return cuMemcpyFake(dst, src, bytes);
}
CUresult cuStreamBeginCaptureFake(CUstream, CUstreamCaptureMode) {
  Fake &f = fake();
  if (f.capturing)
    return CUDA_ERROR_ILLEGAL_STATE;
  f.capturing = true;
  f.captured.clear();
  return CUDA_SUCCESS;
}
CUresult cuStreamEndCaptureFake(CUstream, CUgraph *g) {
  Fake &f = fake();
  if (!f.capturing)
    return CUDA_ERROR_ILLEGAL_STATE;
  f.capturing = false;
  *g = reinterpret_cast<CUgraph>(new std::vector<std::string>(f.captured));
  return CUDA_SUCCESS;
}
CUresult cuGraphInstantiateWithFlagsFake(CUgraphExec *e, CUgraph g,
                                         unsigned long long) {
  Fake &f = fake();
  ++f.graphs;
  f.graphNodes += reinterpret_cast<std::vector<std::string> *>(g)->size();
  *e = reinterpret_cast<CUgraphExec>(new std::vector<std::string>(
      *reinterpret_cast<std::vector<std::string> *>(g)));
  return CUDA_SUCCESS;
}
CUresult cuGraphLaunchFake(CUgraphExec e, CUstream) {
  Fake &f = fake();
  std::lock_guard<std::mutex> lock(f.mutex);
  ++f.replays;
  for (const std::string &name :
       *reinterpret_cast<std::vector<std::string> *>(e)) {
    ++f.launches;
    f.launched.insert(name);
  }
  return CUDA_SUCCESS;
}
CUresult cuGraphDestroyFake(CUgraph g) {
  delete reinterpret_cast<std::vector<std::string> *>(g);
  return CUDA_SUCCESS;
}
CUresult cuGraphExecDestroyFake(CUgraphExec e) {
  delete reinterpret_cast<std::vector<std::string> *>(e);
  return CUDA_SUCCESS;
}
CUresult cuEventCreateFake(CUevent *e, unsigned) {
  *e = reinterpret_cast<CUevent>(0x4);
  return CUDA_SUCCESS;
}
CUresult cuEventDestroyFake(CUevent) { return CUDA_SUCCESS; }
CUresult cuEventRecordFake(CUevent, CUstream) { return CUDA_SUCCESS; }
CUresult cuEventSynchronizeFake(CUevent) { return CUDA_SUCCESS; }
CUresult cuEventElapsedTimeFake(float *ms, CUevent, CUevent) {
  *ms = 0.001f;
  return CUDA_SUCCESS;
}

const std::map<std::string, void *> &table() {
  static const std::map<std::string, void *> t = {
#define FAKE(name) {#name, reinterpret_cast<void *>(&name##Fake)},
      FAKE(cuInit) FAKE(cuDriverGetVersion) FAKE(cuGetErrorName) FAKE(
          cuGetErrorString) FAKE(cuDeviceGetCount) FAKE(cuDeviceGet)
          FAKE(cuDeviceGetName) FAKE(cuDeviceGetAttribute) FAKE(
              cuDevicePrimaryCtxRetain) FAKE(cuDevicePrimaryCtxRelease)
              FAKE(cuCtxSetCurrent) FAKE(cuCtxGetCurrent) FAKE(
                  cuCtxSynchronize) FAKE(cuMemGetInfo) FAKE(cuMemAlloc)
                  FAKE(cuMemAllocManaged) FAKE(cuMemFree) FAKE(cuMemcpy) FAKE(
                      cuModuleLoadData) FAKE(cuModuleUnload)
                      FAKE(cuModuleGetFunction) FAKE(cuLaunchKernel) FAKE(
                          cuFuncGetAttribute) FAKE(cuFuncGetParamInfo)
                          FAKE(cuFuncSetAttribute) FAKE(cuTensorMapEncodeTiled)
                              FAKE(cuStreamCreate) FAKE(cuStreamDestroy) FAKE(
                                  cuStreamSynchronize) FAKE(cuStreamQuery)
                                  FAKE(cuStreamWaitEvent) FAKE(
                                      cuMemcpyDtoDAsync) FAKE(cuEventCreate)
                                      FAKE(cuEventDestroy) FAKE(
                                          cuEventRecord) FAKE(cuEventSynchronize)
                                          FAKE(cuEventElapsedTime) FAKE(
                                              cuStreamBeginCapture)
                                              FAKE(cuStreamEndCapture) FAKE(
                                                  cuGraphInstantiateWithFlags)
                                                  FAKE(cuGraphLaunch)
                                                      FAKE(cuGraphDestroy) FAKE(
                                                          cuGraphExecDestroy)
#undef FAKE
  };
  return t;
}

} // namespace

extern "C" {
// What aim-run resolves with dlsym; the rest through cuGetProcAddress, by
// base name (a versioned name such as cuMemFree_v2 is not found: that is
// the point of asking for base names).
__attribute__((visibility("default"))) CUresult
cuGetProcAddress_v2(const char *symbol, void **fn, int, cuuint64_t,
                    CUdriverProcAddressQueryResult *status) {
  auto it = table().find(symbol);
  *fn = it == table().end() ? nullptr : it->second;
  if (status)
    *status = it == table().end() ? CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND
                                  : CU_GET_PROC_ADDRESS_SUCCESS;
  return it == table().end() ? CUDA_ERROR_NOT_FOUND : CUDA_SUCCESS;
}
__attribute__((visibility("default"))) CUresult cuDriverGetVersion(int *v) {
  return cuDriverGetVersionFake(v);
}
}
