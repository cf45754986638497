//===- NvptxCompiler.cpp - aim IR to PTX for NVIDIA GPUs ------------------===//
#include "codegen/nvptx/NvptxCompiler.h"

#include "codegen/kernels/BufferizedKernels.h"
#include "codegen/kernels/CodegenError.h"
#include "codegen/kernels/CollectiveCalls.h"
#include "codegen/kernels/GemmCalls.h"
#include "codegen/kernels/GpuLoopMapping.h"
#include "codegen/kernels/GpuPreparation.h"
#include "codegen/kernels/MergedLaunches.h"
#include "codegen/kernels/PromoteAccumulators.h"
#include "codegen/kernels/SharedResultBuffers.h"
#include "codegen/kernels/SplitFullReductions.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Transforms/RegionUtils.h"

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
    std::string key = (launch.getKernelModuleName().getValue() +
                       "::" + launch.getKernelName().getValue())
                          .str();
    launch.setKernelAttr(SymbolRefAttr::get(
        merged.getSymNameAttr(),
        {FlatSymbolRefAttr::get(module.getContext(), renamed.lookup(key))}));
  });
}
/// Whether the host side of the step still loads or stores memory itself
/// (then each launch must finish before the host goes on).
bool hostTouchesMemory(ModuleOp module) {
  bool touches = false;
  for (auto f : module.getOps<func::FuncOp>())
    f.walk([&](Operation *op) {
      if (isa<memref::LoadOp, memref::StoreOp>(op) &&
          !op->getParentOfType<gpu::LaunchOp>())
        touches = true;
    });
  return touches;
}

/// Bytes and floating-point operations of one gpu.launch (see
/// GpuKernelInfo), recorded on it as aim.bytes and aim.flops, and whether
/// its flops are the tensor cores' (aim.tensor_cores).
void recordLaunchCosts(ModuleOp module) {
  module.walk([](gpu::LaunchOp launch) {
    auto count = [](Value v) -> int64_t {
      std::optional<int64_t> c = getConstantIntValue(v);
      return c ? *c : 0;
    };
    int64_t threads =
        count(launch.getGridSizeX()) * count(launch.getGridSizeY()) *
        count(launch.getGridSizeZ()) * count(launch.getBlockSizeX()) *
        count(launch.getBlockSizeY()) * count(launch.getBlockSizeZ());
    llvm::SetVector<Value> captured;
    getUsedValuesDefinedAbove(launch.getBody(), captured);
    int64_t bytes = 0;
    for (Value v : captured)
      if (auto type = dyn_cast<MemRefType>(v.getType()))
        if (type.hasStaticShape())
          bytes += type.getNumElements() * type.getElementTypeBitWidth() / 8;
    // What the kernel reads other than through captured buffers (the
    // generated GEMMs' operands, through their tensor maps).
    if (auto more = launch->getAttrOfType<IntegerAttr>(kLaunchOperandBytes))
      bytes += more.getInt();
    int64_t perThread = 0;
    bool tensorCores = false;
    launch.getBody().walk([&](Operation *op) {
      // A warp's m16n8k16 MMA: 2 x 16 x 8 x 16 flops, 128 a lane; a
      // warpgroup's m64nNk16 wgmma: 2 x 64 x N x 16, over 128 threads.
      int64_t flops = isa<NVVM::MmaOp>(op) ? 128 : 1;
      if (auto wgmma = dyn_cast<NVVM::WgmmaMmaAsyncOp>(op))
        flops = 2 * wgmma.getShape().getM() * wgmma.getShape().getN() *
                wgmma.getShape().getK() / 128;
      tensorCores |= isa<NVVM::MmaOp, NVVM::WgmmaMmaAsyncOp>(op);
      if (flops == 1 &&
          (op->getNumResults() != 1 ||
           !isa<FloatType>(op->getResult(0).getType()) ||
           !isa<arith::ArithDialect, math::MathDialect>(op->getDialect()) ||
           isa<arith::ConstantOp>(op)))
        return;
      int64_t times = 1;
      for (auto loop = op->getParentOfType<scf::ForOp>();
           loop && launch->isProperAncestor(loop);
           loop = loop->getParentOfType<scf::ForOp>()) {
        std::optional<llvm::APInt> trips = loop.getStaticTripCount();
        times *= trips ? trips->getSExtValue() : 1;
      }
      perThread += times * flops;
    });
    Builder b(launch.getContext());
    launch->setAttr("aim.bytes", b.getI64IntegerAttr(bytes));
    launch->setAttr("aim.flops", b.getI64IntegerAttr(perThread * threads));
    launch->setAttr("aim.tensor_cores", b.getBoolAttr(tensorCores));
  });
}
} // namespace

const std::vector<std::string> &supportedGpuChips() {
  static const std::vector<std::string> chips = {"sm_90a"};
  return chips;
}

llvm::Expected<GpuObject> lowerToGpuBinary(ModuleOp module,
                                           const GpuCompileOptions &options) {
  if (options.bf16GemmOperands && !options.gemmEpilogues)
    return codegenError("bfloat16 GEMM operands need the GEMM epilogue calls "
                        "(aimcCudaGemm): drop --gemm-epilogues=false or "
                        "--gemm-operands bf16");
  if (options.gemmKernel == GemmKernel::Wgmma && !options.bf16GemmOperands)
    return codegenError("the generated wgmma GEMMs read bfloat16 operands: "
                        "--gemm-kernel wgmma needs --gemm-operands bf16 "
                        "(and the GEMM epilogues)");
  if (!llvm::is_contained(supportedGpuChips(), options.chip))
    return codegenError(
        "the GPU backend does not support '" + options.chip +
        "' yet; supported: " + llvm::join(supportedGpuChips(), ", "));
  if (!llvm::sys::fs::exists(options.libdevice))
    return codegenError("libdevice not found at '" + options.libdevice +
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

  BufferizedKernelOptions lowering;
  lowering.linalg.blas = options.cublas;
  // Every plain GEMM carries its epilogue (bias, residual): aimcCudaGemm.
  lowering.linalg.gemmEpilogues = options.cublas && options.gemmEpilogues;
  lowering.linalg.gemmOperands =
      options.bf16GemmOperands ? GemmOperands::BF16 : GemmOperands::F32;
  lowering.linalg.attention = options.attention;
  lowering.attentionTarget = KernelTarget::GpuLaunch;
  lowering.fuseElementwise = true;
  lowering.splitReductionsFrom = kSplitReductionsFrom;
  llvm::Expected<KernelCount> kernels =
      lowerToBufferizedKernels(module, lowering);
  if (!kernels)
    return kernels.takeError();
  std::map<std::string, std::vector<std::string>> sharing =
      resultsSharingArgumentBuffers(module);
  std::vector<GemmChoice> gemms;
  if (options.cublas && options.bf16GemmOperands)
    gemms = callGemmFunction(
        module, "aimcCudaSgemm", "aimcCudaGemmBf16StridedBatched",
        GemmOperands::BF16, "aimcCudaGemm",
        GeneratedGemms{options.gemmKernel, KernelTarget::GpuLaunch});
  else if (options.cublas)
    gemms =
        callGemmFunction(module, "aimcCudaSgemm", "aimcCudaSgemmStridedBatched",
                         GemmOperands::F32, "aimcCudaGemm");
  callCollectiveFunctions(module, CollectiveSymbols::cuda());
  if (llvm::Error e = prepareKernelsForGpu(module, GpuPreparationOptions{}))
    return e;
  // The kernels on buffers, before loops (docs/gpu-codegen.md).
  if (getenv("AIMC_DUMP_GPU_LINALG"))
    module.print(llvm::errs());

  // Parallel loop nests, tiled for blocks of kBlockThreads threads, mapped
  // to blocks and threads, outlined into gpu.modules...
  std::string toLoops =
      "func.func(convert-linalg-to-parallel-loops,loop-invariant-code-motion)";
  std::string toLaunches =
      "func.func(convert-parallel-loops-to-gpu,canonicalize)";
  // Constants and index arithmetic sink into the kernels first: trip counts
  // and strides known to ptxas, fewer parameters.
  std::string toKernels = "func.func(gpu-launch-sink-index-computations),"
                          "gpu-kernel-outlining,lower-affine,convert-scf-to-cf";
  // ... merged into one (a single PTX module), then NVVM and PTX. PTX ISA
  // 8.1: kernel parameters up to 32 KB on sm_70 and later (CUDA 12.1
  // drivers on), so that AdamW over every parameter is one kernel
  // (MultiTensorKernels.h); 8.3: the generated GEMM's tensormap proxy
  // fences (WgmmaGemm.h). NVVM ops without an LLVM intrinsic
  // (mbarrier.try_wait.parity's loop) become inline PTX.
  std::string toPtx = llvm::formatv(
      "nvvm-attach-target{{chip={0} features=+ptx83 O=3 l={1}},"
      "gpu.module(convert-gpu-to-nvvm{{use-bare-ptr-memref-call-conv=1}),"
      "convert-nvvm-to-llvm,reconcile-unrealized-casts,"
      "gpu-module-to-binary{{format=isa}",
      options.chip, options.libdevice);
  struct LaunchCost {
    int64_t bytes = 0, flops = 0;
    bool tensorCores = false;
  };
  llvm::StringMap<LaunchCost> costs;   // by kernel
  std::vector<LaunchCost> launchCosts; // in walk order
  bool hostSynchronous = true;
  for (const std::string &pipeline : {toLoops, toLaunches, toKernels, toPtx}) {
    // The kernels and their launches, before NVVM (docs/gpu-codegen.md).
    if (pipeline == toPtx && getenv("AIMC_DUMP_GPU_KERNELS"))
      module.print(llvm::errs());
    auto pm = PassManager::on<ModuleOp>(ctx);
    if (failed(parsePassPipeline(pipeline, pm)))
      return codegenError("internal error: bad GPU pass pipeline: " + pipeline);
    if (failed(pm.run(module)))
      return codegenError(
          "lowering to GPU kernels failed (see the diagnostics)");
    if (pipeline == toLoops) {
      tileInnermostParallelLoops(module, kBlockThreads);
      promoteLoopAccumulators(module);
      mapParallelLoopsToGpu(module);
    }
    if (pipeline == toLaunches) {
      recordLaunchCosts(module);
      mergeIndependentLaunches(module);
    }
    if (pipeline == toKernels) {
      // Outlining keeps the launches in place, not their attributes:
      // pair them up again in order.
      SmallVector<gpu::LaunchFuncOp> launches;
      module.walk([&](gpu::LaunchFuncOp l) { launches.push_back(l); });
      mergeGpuModules(module);
      hostSynchronous = hostTouchesMemory(module);
      for (auto [launch, cost] : llvm::zip(launches, launchCosts))
        costs[launch.getKernelName().getValue()] = cost;
    }
    if (pipeline == toLaunches) {
      launchCosts.clear();
      module.walk([&](gpu::LaunchOp l) {
        auto tensorCores = l->getAttrOfType<BoolAttr>("aim.tensor_cores");
        launchCosts.push_back(
            {l->getAttrOfType<IntegerAttr>("aim.bytes").getInt(),
             l->getAttrOfType<IntegerAttr>("aim.flops").getInt(),
             tensorCores && tensorCores.getValue()});
      });
    }
  }
  GpuObject object;
  object.gemms = std::move(gemms);
  object.kernelCalls = kernels->launches;
  object.distinctKernels = kernels->distinct;
  object.hostTouchesMemory = hostSynchronous;
  object.resultsSharingArguments = std::move(sharing);
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
    LaunchCost cost = costs.lookup(match[1]);
    object.kernels.back().bytes = cost.bytes;
    object.kernels.back().flops = cost.flops;
    object.kernels.back().tensorCores = cost.tensorCores;
    rest = rest.substr(rest.find(match[0]) + match[0].size());
  }
  if (object.kernels.empty())
    return codegenError("no GPU kernel came out of the module");
  return object;
}

llvm::Expected<GpuObject> compileToPtx(ModuleOp module,
                                       const GpuCompileOptions &options) {
  return lowerToGpuBinary(module, options);
}

llvm::Error assembleWithPtxas(GpuObject &object,
                              const GpuCompileOptions &options) {
  SmallString<128> ptxPath, logPath, cubinPath;
  if (auto ec = llvm::sys::fs::createTemporaryFile("aimc", "ptx", ptxPath))
    return codegenError("cannot create a temporary file: " + ec.message());
  if (auto ec = llvm::sys::fs::createTemporaryFile("aimc", "cubin", cubinPath))
    return codegenError("cannot create a temporary file: " + ec.message());
  if (auto ec =
          llvm::sys::fs::createTemporaryFile("aimc-ptxas", "log", logPath))
    return codegenError("cannot create a temporary file: " + ec.message());
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(ptxPath, ec);
    if (ec)
      return codegenError("cannot write " + ptxPath + ": " + ec.message());
    os << object.ptx;
  }
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(logPath),
                                          StringRef(logPath)};
  std::string arch = "-arch=" + options.chip;
  SmallVector<StringRef> args = {options.ptxas, arch,      "-v",
                                 "-o",          cubinPath, ptxPath};
  std::string error;
  int rc = llvm::sys::ExecuteAndWait(options.ptxas, args, std::nullopt,
                                     redirects, 0, 0, &error);
  auto log = llvm::MemoryBuffer::getFile(logPath);
  std::string text = log ? (*log)->getBuffer().str() : std::string();
  auto cubin = llvm::MemoryBuffer::getFile(cubinPath);
  if (cubin)
    object.cubin = (*cubin)->getBuffer().str();
  llvm::sys::fs::remove(ptxPath);
  llvm::sys::fs::remove(logPath);
  llvm::sys::fs::remove(cubinPath);
  if (rc == 0 && object.cubin.empty())
    return codegenError("ptxas (" + options.ptxas + ") wrote no cubin");
  if (rc != 0)
    return codegenError("ptxas (" + options.ptxas + ") rejected the PTX" +
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
