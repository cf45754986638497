//===- CudaProgram.cpp - an artifact's GPU code on a CUDA device ----------===//
#include "runtime/cuda/CudaProgram.h"

#include <cstdlib>

namespace aim::rt {

StatusOr<std::unique_ptr<CudaProgram>>
CudaProgram::load(const Artifact &artifact, int ordinal, GemmPrecision gemm) {
  const aimx::GpuCode *gpu = artifact.root->gpu();
  if (!gpu)
    return Status::error("--device cuda: the artifact has no GPU code "
                         "(compile it with aimc --target host,sm_90a)");
  GpuCallState &state = gpuCallState();
  if (state.driver)
    return Status::error("internal error: a CUDA program is already loaded "
                         "(aim-run drives one at a time)");
  StatusOr<std::unique_ptr<CudaDriver>> driver = CudaDriver::open(ordinal);
  if (!driver)
    return driver.status();
  std::unique_ptr<CudaProgram> program(new CudaProgram);
  program->driver = std::move(*driver);
  program->chip = gpu->chip()->str();
  program->bf16GemmOperands =
      gpu->gemm_operands() && gpu->gemm_operands()->str() == "bf16";
  program->attention = gpu->attention() ? gpu->attention()->str() : "";
  program->gemmKernel = gpu->gemm_kernel() ? gpu->gemm_kernel()->str() : "";
  if (gpu->gemms())
    for (const auto *g : *gpu->gemms()) {
      ++program->gemmsWithEpilogue;
      program->generatedGemms +=
          g->kernel() && g->kernel()->str() != "cublaslt";
    }
  program->gemm = gemm;
  CudaDriver &d = *program->driver;
  if (d.chip() != program->chip)
    return Status::error("--device cuda: the artifact's GPU code is for " +
                         program->chip + " but device " +
                         std::to_string(d.ordinal()) + " is " + d.name() +
                         " (" + d.chip() + "); recompile with aimc --target " +
                         d.chip() + " if the backend supports it");
  CUstream stream = nullptr;
  if (Status s = d.check(d.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
                         "cuStreamCreate");
      !s)
    return s;
  state = GpuCallState();
  state.driver = &d;
  state.stream = stream;
  state.hostTouchesMemory = gpu->host_touches_memory();
  DeviceLimits &limits = state.limits;
  const CUdevice_attribute blockAttributes[3] = {
      CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y,
      CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z};
  const CUdevice_attribute gridAttributes[3] = {
      CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y,
      CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z};
  for (int i = 0; i < 3; ++i) {
    limits.block[i] = d.attribute(blockAttributes[i], int(limits.block[i]));
    limits.grid[i] = d.attribute(gridAttributes[i], int(limits.grid[i]));
  }
  limits.threadsPerBlock = d.attribute(
      CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, int(limits.threadsPerBlock));
  const char *graphs = std::getenv("AIMC_CUDA_GRAPHS");
  program->graphs = !(graphs && std::string(graphs) == "0");
  program->deviceMemoryOnly = !state.hostTouchesMemory;
  state.temporaries = std::make_unique<MemoryPool>(
      [p = program.get()](size_t bytes) -> void * {
        CUdeviceptr block = 0;
        return p->allocate(&block, bytes) == CUDA_SUCCESS
                   ? reinterpret_cast<void *>(block)
                   : nullptr;
      },
      [&d](void *p) { d.cuMemFree(reinterpret_cast<CUdeviceptr>(p)); });
  StatusOr<std::unique_ptr<CublasLt>> gemms = CublasLt::open(d, gemm);
  if (!gemms)
    return gemms.status();
  state.gemms = std::move(*gemms);
  // Loading runs the launcher code's constructor, which loads the cubin.
  StatusOr<std::unique_ptr<SharedObject>> code =
      SharedObject::load(*gpu->launcher(), "GPU launcher code");
  if (!code)
    return code.status();
  program->code = std::move(*code);
  if (!state.firstError.empty())
    return Status::error("--device cuda: " + state.firstError);
  return program;
}

CudaProgram::~CudaProgram() {
  GpuCallState &state = gpuCallState();
  if (!state.driver)
    return;
  code.reset(); // unloads the module while the context lives
  for (auto &[function, entry] : entries) {
    for (auto &[pointer, bytes] : entry.slots)
      if (pointer)
        driver->cuMemFree(reinterpret_cast<CUdeviceptr>(pointer));
    forgetGraph(entry);
    if (entry.arena)
      driver->cuMemFree(entry.arena);
  }
  if (state.start)
    driver->cuEventDestroy(state.start);
  if (state.stop)
    driver->cuEventDestroy(state.stop);
  state.temporaries.reset();
  state.gemms.reset();
  driver->cuStreamDestroy(state.stream);
  state = GpuCallState();
}

CUresult CudaProgram::allocate(CUdeviceptr *pointer, size_t bytes) {
  return deviceMemoryOnly
             ? driver->cuMemAlloc(pointer, bytes)
             : driver->cuMemAllocManaged(pointer, bytes, CU_MEM_ATTACH_GLOBAL);
}

CudaProgram::StepArenas CudaProgram::stepArenas() const {
  StepArenas arenas;
  for (const auto &[function, entry] : entries)
    if (entry.arena) {
      ++arenas.count;
      arenas.bytes += entry.plan.bytes;
      arenas.peakLive += entry.plan.peakLive;
    }
  return arenas;
}

std::string CudaProgram::description() const {
  return "cuda:" + std::to_string(driver->ordinal()) + " " + driver->name() +
         " (" + chip +
         (gemm == GemmPrecision::F32
              ? std::string()
              : std::string(", ") + gemmPrecisionName(gemm) + " GEMMs") +
         (attention.empty() ? "" : ", " + attention + " attention") +
         (gemmKernel.empty()
              ? ""
              : ", " + gemmKernel + " GEMM kernels (" +
                    std::to_string(generatedGemms) + " of " +
                    std::to_string(gemmsWithEpilogue) + " GEMMs)") +
         (bf16GemmOperands ? ", bf16 GEMM operands" : "") + ")";
}

Status CudaProgram::run(PackedEntry function,
                        const std::vector<BufferRef> &buffers,
                        size_t numArguments,
                        const std::vector<InPlace> &inPlace) {
  GpuCallState &state = gpuCallState();
  CudaDriver &d = *driver;
  EntryState &entry = entries[function];
  std::vector<std::pair<void *, size_t>> &slots = entry.slots;
  slots.resize(buffers.size(), {nullptr, 0});
  entry.resident.resize(buffers.size(), false);
  // Results the code writes into their arguments' buffers get those
  // buffers: no slot of their own, no copy after the step.
  std::vector<long> sharedWith(buffers.size(), -1);
  for (const InPlace &p : inPlace)
    if (p.sharesBuffer && p.argument < numArguments &&
        p.result < buffers.size() &&
        buffers[p.argument].bytes == buffers[p.result].bytes)
      sharedWith[p.result] = static_cast<long>(p.argument);
  if (sharedWith != entry.sharedWith) {
    forgetGraph(entry);
    entry.sharedWith = sharedWith;
  }
  std::vector<void *> pointers;
  for (size_t i = 0; i < buffers.size(); ++i) {
    auto &[pointer, bytes] = slots[i];
    if (sharedWith[i] >= 0) {
      if (pointer) // its own buffer from calls before
        d.cuMemFree(reinterpret_cast<CUdeviceptr>(pointer));
      pointer = nullptr;
      bytes = 0;
      pointers.push_back(pointers[sharedWith[i]]);
      continue;
    }
    if (bytes != buffers[i].bytes) {
      forgetGraph(entry); // the graph holds the old buffers
      if (pointer)
        d.cuMemFree(reinterpret_cast<CUdeviceptr>(pointer));
      CUdeviceptr p = 0;
      if (Status s =
              d.check(allocate(&p, buffers[i].bytes ? buffers[i].bytes : 1),
                      "allocating " + std::to_string(buffers[i].bytes) +
                          " bytes for a step buffer");
          !s) {
        pointer = nullptr;
        bytes = 0;
        return s;
      }
      pointer = reinterpret_cast<void *>(p);
      bytes = buffers[i].bytes;
      entry.resident[i] = false;
    }
    if (i < numArguments && bytes > 0 && !entry.resident[i])
      if (Status s = d.check(
              d.cuMemcpy(reinterpret_cast<CUdeviceptr>(pointer),
                         reinterpret_cast<CUdeviceptr>(buffers[i].data), bytes),
              "copying a step argument to the device");
          !s)
        return s;
    pointers.push_back(pointer);
  }
  if (Status s = launch(function, entry, pointers.data()); !s)
    state.fail(s.message());
  if (state.firstError.empty())
    if (Status s = state.awaitStream
                       ? state.awaitStream(state.stream)
                       : d.check(d.cuStreamSynchronize(state.stream),
                                 "finishing the step (cuStreamSynchronize)");
        !s)
      state.fail(s.message());
  if (!state.firstError.empty()) {
    // A failed launch leaves the context unusable: say so, once.
    return Status::error("the step failed on " + description() + ": " +
                         state.firstError);
  }
  // In-place results become their arguments' device values; the others go
  // back to the caller.
  std::vector<bool> kept(buffers.size(), false);
  for (const InPlace &p : inPlace) {
    if (sharedWith[p.result] >= 0) { // written there already
      entry.resident[p.argument] = true;
      kept[p.result] = true;
      continue;
    }
    if (Status s = d.check(
            d.cuMemcpy(reinterpret_cast<CUdeviceptr>(pointers[p.argument]),
                       reinterpret_cast<CUdeviceptr>(pointers[p.result]),
                       buffers[p.argument].bytes),
            "keeping a step result on the device");
        !s)
      return s;
    entry.resident[p.argument] = true;
    kept[p.result] = true;
  }
  for (size_t i = numArguments; i < buffers.size(); ++i)
    if (buffers[i].bytes > 0 && !kept[i])
      if (Status s =
              d.check(d.cuMemcpy(reinterpret_cast<CUdeviceptr>(buffers[i].data),
                                 reinterpret_cast<CUdeviceptr>(pointers[i]),
                                 buffers[i].bytes),
                      "copying a step result from the device");
          !s)
        return s;
  return Status::ok();
}

void CudaProgram::forgetGraph(EntryState &entry) {
  if (!entry.exec)
    return;
  driver->cuGraphExecDestroy(entry.exec);
  driver->cuGraphDestroy(entry.graph);
  entry.exec = nullptr;
  entry.graph = nullptr;
  entry.calls = 0;
}

Status CudaProgram::launch(PackedEntry function, EntryState &entry,
                           void **pointers) {
  GpuCallState &state = gpuCallState();
  CudaDriver &d = *driver;
  ++entry.calls;
  // A captured graph is kept, and set aside while graphs are off or
  // kernels are being timed.
  if (entry.exec && graphs && !state.profiling)
    return d.check(d.cuGraphLaunch(entry.exec, state.stream),
                   "replaying the step's CUDA graph");
  // The first call runs directly, its temporaries from the pool, their
  // sizes and lifetimes recorded; the captured call takes them from one
  // arena placed by that record (MemoryPool.h, placeInArena), so a graph's
  // temporaries take their liveness peak.
  bool capturing =
      graphs && !entry.exec && !state.hostTouchesMemory && !state.profiling;
  bool capture = capturing && entry.calls >= 2;
  if (!capture) {
    bool record = capturing && !entry.recorded;
    if (record)
      state.temporaries->startRecording();
    function(pointers);
    if (record) {
      entry.plan = state.temporaries->finishRecording();
      entry.recorded = true;
    }
    return Status::ok();
  }
  if (entry.recorded && !entry.arena && entry.plan.bytes > 0 &&
      allocate(&entry.arena, entry.plan.bytes) != CUDA_SUCCESS) {
    entry.arena = 0;
    if (!graphsUsePool) { // the first call's blocks, free now, make room
      state.temporaries->trim();
      if (allocate(&entry.arena, entry.plan.bytes) != CUDA_SUCCESS)
        entry.arena = 0;
    }
  }
  if (entry.arena)
    state.temporaries->serve(reinterpret_cast<char *>(entry.arena), entry.plan);
  if (Status s = d.check(
          d.cuStreamBeginCapture(state.stream, CU_STREAM_CAPTURE_MODE_RELAXED),
          "starting a CUDA graph capture");
      !s) {
    state.temporaries->stopServing();
    return s;
  }
  function(pointers);
  bool fromArena = entry.arena && state.temporaries->stopServing();
  CUgraph graph = nullptr;
  Status ended =
      d.check(d.cuStreamEndCapture(state.stream, &graph), "capturing the step");
  if (!ended || !state.firstError.empty()) {
    if (graph)
      d.cuGraphDestroy(graph);
    return ended;
  }
  CUgraphExec exec = nullptr;
  if (Status s = d.check(d.cuGraphInstantiateWithFlags(&exec, graph, 0),
                         "instantiating the step's CUDA graph");
      !s) {
    d.cuGraphDestroy(graph);
    return s;
  }
  entry.graph = graph;
  entry.exec = exec;
  if (!fromArena) {
    graphsUsePool = true;
    state.temporaries->setTrimOnFailure(false);
  } else if (!graphsUsePool) {
    state.temporaries->trim(); // no graph holds the pool's blocks
  }
  // The capture recorded the launches without running them.
  return d.check(d.cuGraphLaunch(exec, state.stream),
                 "launching the step's CUDA graph");
}

Status CudaProgram::fetchArgument(PackedEntry function, size_t slot,
                                  BufferRef to) {
  auto it = entries.find(function);
  if (it == entries.end() || slot >= it->second.slots.size() ||
      !it->second.resident[slot])
    return Status::ok(); // the caller's buffer is current
  auto [pointer, bytes] = it->second.slots[slot];
  if (bytes != to.bytes)
    return Status::error("internal error: fetching " + std::to_string(bytes) +
                         " bytes into a buffer of " + std::to_string(to.bytes));
  return driver->check(driver->cuMemcpy(reinterpret_cast<CUdeviceptr>(to.data),
                                        reinterpret_cast<CUdeviceptr>(pointer),
                                        bytes),
                       "copying a parameter back from the device");
}

void CudaProgram::setProfiling(bool on) {
  GpuCallState &state = gpuCallState();
  if (on && !state.start) {
    driver->cuEventCreate(&state.start, CU_EVENT_DEFAULT);
    driver->cuEventCreate(&state.stop, CU_EVENT_DEFAULT);
  }
  state.profiling = on && state.start && state.stop;
}

std::map<std::string, KernelTime> CudaProgram::takeKernelTimes() {
  return std::exchange(gpuCallState().kernelTimes, {});
}

} // namespace aim::rt
