//===- NvptxCompiler.cpp - aim IR to PTX for NVIDIA GPUs ------------------===//
#include "codegen/nvptx/NvptxCompiler.h"

#include "codegen/kernels/BufferizedKernels.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"

#include <mutex>

namespace mlir::aim {

namespace {
llvm::Error failure(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 message.str().c_str());
}

/// Threads per block, all along the innermost parallel loop.
constexpr int64_t kBlockThreads = 128;

/// gpu-kernel-outlining makes one gpu.module per kernel, named uniquely,
/// while the kernels inside may share names. One module for all of them,
/// each kernel renamed after its old module, makes one PTX file that ptxas
/// assembles in one go.
void mergeGpuModules(ModuleOp module) {
  SmallVector<gpu::GPUModuleOp> modules(module.getOps<gpu::GPUModuleOp>());
  if (modules.size() < 2)
    return;
  gpu::GPUModuleOp merged = modules.front();
  llvm::StringMap<std::string> renamed; // "module::kernel" -> new name
  for (gpu::GPUModuleOp m : modules) {
    SmallVector<gpu::GPUFuncOp> kernels(m.getOps<gpu::GPUFuncOp>());
    for (gpu::GPUFuncOp k : kernels) {
      std::string name = kernels.size() == 1
                             ? m.getSymName().str()
                             : (m.getSymName() + "_" + k.getName()).str();
      renamed[(m.getSymName() + "::" + k.getName()).str()] = name;
      k.setName(name);
      if (m != merged) // gpu.module has no terminator: append
        k->moveBefore(merged.getBody(), merged.getBody()->end());
    }
  }
  for (gpu::GPUModuleOp m : llvm::drop_begin(modules))
    m.erase();
  module.walk([&](gpu::LaunchFuncOp launch) {
    std::string key =
        (launch.getKernelModuleName().getValue() + "::" +
         launch.getKernelName().getValue())
            .str();
    launch.setKernelAttr(SymbolRefAttr::get(
        merged.getSymNameAttr(),
        {FlatSymbolRefAttr::get(module.getContext(), renamed.lookup(key))}));
  });
}
} // namespace

const std::vector<std::string> &supportedGpuChips() {
  static const std::vector<std::string> chips = {"sm_90a"};
  return chips;
}

llvm::Expected<GpuObject> compileToPtx(ModuleOp module,
                                       const GpuCompileOptions &options) {
  if (!llvm::is_contained(supportedGpuChips(), options.chip))
    return failure("the GPU backend does not support '" + options.chip +
                   "' yet; supported: " +
                   llvm::join(supportedGpuChips(), ", "));
  if (!llvm::sys::fs::exists(options.libdevice))
    return failure("libdevice not found at '" + options.libdevice +
                   "' (CUDA's nvvm/libdevice/libdevice.10.bc)");
  MLIRContext *ctx = module.getContext();
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  ctx->appendDialectRegistry(registry);
  ctx->loadAllAvailableDialects();
  static std::once_flag passesRegistered;
  std::call_once(passesRegistered, [] { registerAllPasses(); });

  llvm::Expected<KernelCount> kernels =
      lowerToBufferizedKernels(module, /*blas=*/false);
  if (!kernels)
    return kernels.takeError();

  // Parallel loop nests, tiled for blocks of kBlockThreads threads, mapped
  // to blocks and threads, outlined into gpu.modules...
  std::string toLoops = "func.func(convert-linalg-to-parallel-loops)";
  std::string toKernels =
      "func.func(gpu-map-parallel-loops,convert-parallel-loops-to-gpu),"
      "gpu-kernel-outlining,lower-affine,convert-scf-to-cf";
  // ... merged into one (a single PTX module), then NVVM and PTX.
  std::string toPtx = llvm::formatv(
      "nvvm-attach-target{{chip={0} O=3 l={1}},"
      "gpu.module(convert-gpu-to-nvvm),reconcile-unrealized-casts,"
      "gpu-module-to-binary{{format=isa}",
      options.chip, options.libdevice);
  for (const std::string &pipeline : {toLoops, toKernels, toPtx}) {
    // The kernels and their launches, before NVVM (docs/gpu-codegen.md).
    if (pipeline == toPtx && getenv("AIMC_DUMP_GPU_KERNELS"))
      module.print(llvm::errs());
    auto pm = PassManager::on<ModuleOp>(ctx);
    if (failed(parsePassPipeline(pipeline, pm)))
      return failure("internal error: bad GPU pass pipeline: " + pipeline);
    if (failed(pm.run(module)))
      return failure("lowering to GPU kernels failed (see the diagnostics)");
    if (pipeline == toLoops)
      tileInnermostParallelLoops(module, kBlockThreads);
    if (pipeline == toKernels)
      mergeGpuModules(module);
  }
  GpuObject object;
  module.walk([&](gpu::BinaryOp binary) {
    for (Attribute a : binary.getObjects())
      if (auto o = dyn_cast<gpu::ObjectAttr>(a)) {
        StringRef text = o.getObject().getValue();
        object.ptx += text.rtrim(StringRef("\0", 1)).str();
        object.ptx += "\n";
      }
  });
  llvm::Regex entry("\\.entry ([A-Za-z0-9_$]+)\\(");
  StringRef rest = object.ptx;
  SmallVector<StringRef> match;
  while (entry.match(rest, &match)) {
    object.kernels.push_back(GpuKernelInfo{match[1].str()});
    rest = rest.substr(rest.find(match[0]) + match[0].size());
  }
  if (object.kernels.empty())
    return failure("no GPU kernel came out of the module");
  return object;
}

llvm::Error assembleWithPtxas(GpuObject &object,
                              const GpuCompileOptions &options) {
  SmallString<128> ptxPath, logPath;
  if (auto ec = llvm::sys::fs::createTemporaryFile("aimc", "ptx", ptxPath))
    return failure("cannot create a temporary file: " + ec.message());
  if (auto ec = llvm::sys::fs::createTemporaryFile("aimc-ptxas", "log", logPath))
    return failure("cannot create a temporary file: " + ec.message());
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(ptxPath, ec);
    if (ec)
      return failure("cannot write " + ptxPath + ": " + ec.message());
    os << object.ptx;
  }
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(logPath),
                                          StringRef(logPath)};
  std::string arch = "-arch=" + options.chip;
  SmallVector<StringRef> args = {options.ptxas, arch, "-v", "-o", "/dev/null",
                                 ptxPath};
  std::string error;
  int rc = llvm::sys::ExecuteAndWait(options.ptxas, args, std::nullopt,
                                     redirects, 0, 0, &error);
  auto log = llvm::MemoryBuffer::getFile(logPath);
  std::string text = log ? (*log)->getBuffer().str() : std::string();
  llvm::sys::fs::remove(ptxPath);
  llvm::sys::fs::remove(logPath);
  if (rc != 0)
    return failure("ptxas (" + options.ptxas + ") rejected the PTX" +
                   (error.empty() ? "" : ": " + error) + "\n" + text);
  // ptxas -v: "Compiling entry function 'k' for 'sm_90a'", then "N bytes
  // stack frame, S bytes spill stores, L bytes spill loads" and "Used R
  // registers, ... [M bytes smem]".
  GpuKernelInfo *current = nullptr;
  llvm::Regex name("entry function '([^']+)'"),
      frame("([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores, "
            "([0-9]+) bytes spill loads"),
      used("Used ([0-9]+) registers"), smem("([0-9]+) bytes smem");
  SmallVector<StringRef> lines, m;
  StringRef(text).split(lines, '\n');
  for (StringRef line : lines) {
    if (name.match(line, &m)) {
      current = nullptr;
      for (GpuKernelInfo &k : object.kernels)
        if (k.name == m[1])
          current = &k;
    } else if (current && frame.match(line, &m)) {
      current->stackBytes = std::stoi(m[1].str());
      current->spillStoreBytes = std::stoi(m[2].str());
      current->spillLoadBytes = std::stoi(m[3].str());
    } else if (current && used.match(line, &m)) {
      current->registers = std::stoi(m[1].str());
      if (smem.match(line, &m))
        current->sharedBytes = std::stoi(m[1].str());
    }
  }
  return llvm::Error::success();
}

} // namespace mlir::aim
