//===- aimc.cpp - the aimc compiler driver --------------------------------===//
//
// A model config (preset or file) in; IR at the requested stage out. Later
// stages (gradients, train step, artifacts) plug in behind --emit and -o.
//
//===----------------------------------------------------------------------===//

#include "codegen/artifact/ArtifactWriter.h"
#include "codegen/host/HostCompiler.h"
#include "codegen/host/HostLinker.h"
#include "codegen/nvptx/GpuProgramCompiler.h"
#include "codegen/nvptx/NvptxCompiler.h"
#include "common/FileIO.h"
#include "common/HostTensor.h"
#include "dialects/aim/AimDialect.h"
#include "frontends/ConfigParser.h"
#include "frontends/ForwardBuilder.h"
#include "frontends/Presets.h"
#include "passes/CostReport.h"
#include "passes/DistributedCost.h"
#include "passes/Pipelines.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

namespace {

cl::OptionCategory aimcCategory("aimc options");

cl::opt<std::string> modelOption(
    "model",
    cl::desc("Preset name (see --list-presets) or a YAML/JSON config "
             "file (keys: docs/config.md)"),
    cl::value_desc("preset|file"), cl::cat(aimcCategory));
cl::opt<int64_t> batchOption("batch",
                             cl::desc("Batch size B of the compiled step"),
                             cl::init(64), cl::cat(aimcCategory));
cl::opt<mlir::aim::Stage>
    emitOption("emit", cl::desc("What to print"),
               cl::init(mlir::aim::Stage::Forward),
               cl::values(clEnumValN(mlir::aim::Stage::Forward, "aim",
                                     "@forward: the forward pass and loss"),
                          clEnumValN(mlir::aim::Stage::LossAndGrads, "grads",
                                     "+ @loss_and_grads (aim-autodiff)"),
                          clEnumValN(mlir::aim::Stage::TrainStep, "train",
                                     "+ @train_step: clipping and AdamW "
                                     "(aim-build-train-step)"),
                          clEnumValN(mlir::aim::Stage::Kernels, "kernels",
                                     "+ aim.fusion kernels (aim-fuse)")),
               cl::cat(aimcCategory));
cl::opt<std::string> prefixModeOption(
    "prefix-mode",
    cl::desc("Prefix-length sampling the step is compiled for: antithetic "
             "(pairs K, N-K: B*N/2 live head rows) or iid (padded to "
             "B*(N-1))"),
    cl::init("antithetic"), cl::cat(aimcCategory));
cl::opt<bool> noPrefixMaskOption(
    "no-prefix-mask",
    cl::desc("Do not run aim-prefix-mask (compute every row of the head)"),
    cl::cat(aimcCategory));
cl::opt<bool> noFuseOption("no-fuse",
                           cl::desc("Do not run aim-fuse (one kernel per op)"),
                           cl::cat(aimcCategory));
cl::opt<std::string> targetDescOption(
    "target-desc",
    cl::desc("Target description for fusion and the cost model: a built-in "
             "name (h100-sxm, l4) or a JSON file (codegen/targets/README.md)"),
    cl::init("h100-sxm"), cl::cat(aimcCategory));
enum class Report { None, Cost, GpuKernels };
cl::opt<Report> reportOption(
    "report", cl::desc("Print a report instead of IR"), cl::init(Report::None),
    cl::values(clEnumValN(Report::Cost, "cost",
                          "per-kernel FLOPs, bytes and roofline time of one "
                          "training step, and what each pass removed"),
               clEnumValN(Report::GpuKernels, "gpu-kernels",
                          "compile every kernel of the training step to PTX "
                          "for --gpu-chip, assemble it with ptxas and list "
                          "registers, spills and shared memory (-o FILE "
                          "also writes the PTX)")),
    cl::cat(aimcCategory));
cl::opt<std::string> gpuChipOption(
    "gpu-chip", cl::desc("The GPU of --report=gpu-kernels (supported: sm_90a)"),
    cl::init("sm_90a"), cl::cat(aimcCategory));
cl::opt<std::string> meshOption(
    "mesh",
    cl::desc("A grid of dp x tp ranks (dp=D,tp=T). With --emit or --target: "
             "the program of one rank (aim-shard, docs/distributed.md; "
             "aim-run trains it under mpirun -np D*T, on GPUs with NCCL; "
             "dp=1 alone keeps its dp sums over itself); with "
             "--report=cost: also the per-rank memory, communication and time "
             "of the step (docs/cost-model.md)"),
    cl::value_desc("dp=D,tp=T"), cl::cat(aimcCategory));
cl::opt<int> zeroOption(
    "zero",
    cl::desc("With --mesh: 1 shards the AdamW moments over the dp ranks "
             "(ZeRO-1); 0 (default) replicates them"),
    cl::init(0), cl::cat(aimcCategory));
cl::opt<int64_t> accumulateOption(
    "accumulate",
    cl::desc("With --mesh: micro-batches per optimiser step (gradient "
             "accumulation; default 1); --emit compiles one micro-batch, "
             "batch / accumulate images over the dp ranks"),
    cl::init(1), cl::cat(aimcCategory));
cl::opt<int64_t> bucketBytesOption(
    "bucket-bytes",
    cl::desc("With --mesh dp > 1 (or dp=1 alone): the gradient reductions "
             "start during the backward in buckets of at most this many bytes "
             "(aim-schedule; 0: after the backward)"),
    cl::init(25 << 20), cl::cat(aimcCategory));
cl::opt<double> linkBandwidthOption(
    "link-bandwidth",
    cl::desc("With --mesh: bytes/s per direction between ranks (default "
             "450e9, NVLink 4 on an H100 SXM)"),
    cl::init(450e9), cl::cat(aimcCategory));
cl::opt<std::string> targetOption(
    "target",
    cl::desc("Compile the training step for these targets (comma-separated: "
             "host, sm_90a, or both) and write one .aimx artifact to -o"),
    cl::value_desc("host,sm_90a"), cl::cat(aimcCategory));
cl::opt<std::string> cpuOption(
    "cpu", cl::desc("Instruction set of host code (recorded in the artifact)"),
    cl::init("x86-64-v3"), cl::cat(aimcCategory));
cl::opt<bool> hostBlasOption(
    "host-blas",
    cl::desc("Host GEMMs (linear layers, and attention's products per "
             "sample and head) call cblas_sgemm (aim-run carries OpenBLAS); "
             "--host-blas=false compiles them as loops"),
    cl::init(true), cl::cat(aimcCategory));
using mlir::aim::AttentionLowering;
cl::opt<AttentionLowering> attentionOption(
    "attention",
    cl::desc("How GPU code computes float32 attention (--target sm_90a, "
             "--report=gpu-kernels)"),
    cl::values(
        clEnumValN(AttentionLowering::Dense, "dense",
                   "scores as [B, heads, N, N] buffers: cuBLASLt "
                   "batched GEMMs and softmax kernels (default)"),
        clEnumValN(AttentionLowering::Tiled, "tiled",
                   "a warp a row, keys in tiles by the recorded tile "
                   "rule, online softmax; nothing N x N stored"),
        clEnumValN(AttentionLowering::Flash, "flash",
                   "forward and backward on tensor cores (bfloat16 tiles "
                   "in shared memory, mma.sync, online softmax, the tile "
                   "rule; not yet timed on a GPU)")),
    cl::init(AttentionLowering::Dense), cl::cat(aimcCategory));
enum class GemmOperandChoice { F32, BF16 };
cl::opt<GemmOperandChoice> gemmOperandsOption(
    "gemm-operands",
    cl::desc("What the GPU code's cuBLASLt GEMMs read (--target sm_90a, "
             "--report=gpu-kernels)"),
    cl::values(clEnumValN(GemmOperandChoice::F32, "f32",
                          "the float32 operands as they are (the default "
                          "with --gemm-epilogues=false)"),
               clEnumValN(GemmOperandChoice::BF16, "bf16",
                          "A and B copied to bfloat16 (rounded to nearest "
                          "even); C, results and accumulation float32 "
                          "(default; measured in docs/results/)")),
    cl::init(GemmOperandChoice::BF16), cl::cat(aimcCategory));
enum class GemmOperandCopies { PerValue, PerGemm };
cl::opt<GemmOperandCopies> gemmOperandCopiesOption(
    "gemm-operand-copies",
    cl::desc("With --gemm-operands bf16: where the bfloat16 copies are made"),
    cl::values(clEnumValN(GemmOperandCopies::PerValue, "per-value",
                          "one a value, by the kernel computing it, read by "
                          "every GEMM of the value (aim-bf16-gemm-operands; "
                          "default)"),
               clEnumValN(GemmOperandCopies::PerGemm, "per-gemm",
                          "each GEMM rounds its own operands (a saved "
                          "activation or weight again in the backward; to "
                          "measure the difference)")),
    cl::init(GemmOperandCopies::PerValue), cl::cat(aimcCategory));
using mlir::aim::GemmKernel;
cl::opt<GemmKernel> gemmKernelOption(
    "gemm-kernel",
    cl::desc("What computes the GPU code's GEMMs with epilogue (--target "
             "sm_90a, --report=gpu-kernels)"),
    cl::values(
        clEnumValN(GemmKernel::Library, "cublaslt", "cuBLASLt calls (default)"),
        clEnumValN(GemmKernel::Wgmma, "wgmma",
                   "a generated kernel (TMA, mbarrier pipeline, wgmma, the "
                   "bias and residual in its epilogue) for each GEMM whose A "
                   "is [M, K] and B [N, K] on 16-byte boundaries (K % 8 == "
                   "0; linear layers' forward); cuBLASLt for the others. Needs --gemm-operands "
                   "bf16; not yet run on a GPU")),
    cl::init(GemmKernel::Library), cl::cat(aimcCategory));
cl::opt<bool> gemmEpiloguesOption(
    "gemm-epilogues",
    cl::desc("GPU code adds each GEMM's bias and residual in the cuBLASLt "
             "call (default); =false: a kernel writes the starting C first, "
             "as before (to tell the two apart on a GPU)"),
    cl::init(true), cl::cat(aimcCategory));
cl::opt<std::string> outputOption("o", cl::desc("Output file ('-' = stdout)"),
                                  cl::value_desc("file"), cl::init("-"),
                                  cl::cat(aimcCategory));
cl::opt<bool> listPresetsOption("list-presets",
                                cl::desc("List the model presets and exit"),
                                cl::cat(aimcCategory));

/// The AIM passes as the flags ask (--no-prefix-mask, --prefix-mode,
/// --no-fuse, --target-desc).
mlir::aim::PipelineOptions pipelineFromFlags() {
  mlir::aim::PipelineOptions pipeline;
  pipeline.prefixMask = !noPrefixMaskOption;
  pipeline.prefixMode = prefixModeOption;
  pipeline.fuse = !noFuseOption;
  pipeline.target = targetDescOption;
  return pipeline;
}

/// The GPU backend's options for `chip` as the flags ask (--attention,
/// --gemm-operands).
mlir::aim::GpuCompileOptions gpuOptionsFromFlags(const std::string &chip) {
  mlir::aim::GpuCompileOptions gpu;
  gpu.chip = chip;
  gpu.attention = attentionOption;
  gpu.gemmKernel = gemmKernelOption;
  gpu.gemmEpilogues = gemmEpiloguesOption;
  // Without the epilogue calls the GEMMs are plain float32 calls, unless
  // bf16 is asked for by name (an error, lowerToGpuBinary says why).
  gpu.bf16GemmOperands =
      gemmOperandsOption == GemmOperandChoice::BF16 &&
      (gemmEpiloguesOption || gemmOperandsOption.getNumOccurrences());
  return gpu;
}

/// Whether the GPU code's bfloat16 GEMM operands are rounded in the aim IR
/// (aim-bf16-gemm-operands); an error if --gemm-operand-copies is given for
/// float32 operands.
Expected<bool> gpuRoundsInAimIr(const mlir::aim::GpuCompileOptions &gpu) {
  if (!gpu.bf16GemmOperands && gemmOperandCopiesOption.getNumOccurrences())
    return createStringError(
        inconvertibleErrorCode(),
        "--gemm-operand-copies says where bfloat16 GEMM operands are "
        "rounded: the GEMMs read float32 here (--gemm-operands f32 or "
        "--gemm-epilogues=false)");
  return gpu.bf16GemmOperands &&
         gemmOperandCopiesOption == GemmOperandCopies::PerValue;
}

/// The first GPU-code flag given on the command line (--attention,
/// --gemm-operands, --gemm-epilogues, --gemm-kernel, --gemm-operand-copies),
/// if any: they mean nothing without GPU code, and silence would hide a
/// mistyped --target.
std::optional<std::string> gpuOnlyFlagGiven() {
  if (attentionOption.getNumOccurrences())
    return std::string("--attention");
  if (gemmOperandsOption.getNumOccurrences())
    return std::string("--gemm-operands");
  if (gemmEpiloguesOption.getNumOccurrences())
    return std::string("--gemm-epilogues");
  if (gemmKernelOption.getNumOccurrences())
    return std::string("--gemm-kernel");
  if (gemmOperandCopiesOption.getNumOccurrences())
    return std::string("--gemm-operand-copies");
  return std::nullopt;
}

/// Each GEMM with epilogue and what computes it (--gemm-kernel's rule),
/// then how many of each.
void printGemmChoices(const std::vector<mlir::aim::GemmChoice> &gemms) {
  int generated = 0;
  for (const mlir::aim::GemmChoice &g : gemms) {
    bool wgmma = g.kernel == mlir::aim::GemmKernel::Wgmma;
    generated += wgmma;
    outs() << formatv("gemm {0,-30} {1}x{2}x{3}{4}{5}{6}{7} -> {8}\n", g.site,
                      g.m, g.n, g.k, g.transposeA ? " A^T" : "",
                      g.transposeB ? " B^T" : "", g.bias ? " +bias" : "",
                      g.residual ? " +residual" : "",
                      wgmma ? "wgmma" : "cublaslt");
  }
  outs() << formatv("{0} GEMMs with epilogue: {1} generated (wgmma), {2} "
                    "cuBLASLt\n",
                    gemms.size(), generated, gemms.size() - generated);
}

int error(const Twine &message) {
  WithColor::error(errs(), "aimc") << message << "\n";
  return 1;
}

std::string humanCount(double n) {
  if (n >= 1e9)
    return formatv("{0:F2}B", n / 1e9).str();
  if (n >= 1e6)
    return formatv("{0:F2}M", n / 1e6).str();
  return std::to_string(static_cast<int64_t>(n));
}

void listPresets() {
  outs() << format("%-10s %9s %5s %5s %3s %3s %5s %3s %8s %8s\n", "preset",
                   "image", "patch", "D", "L", "h", "Dh", "M", "trunk", "head");
  for (const aim::ModelConfig &c : aim::modelPresets()) {
    std::string image = std::to_string(c.imageHeight) + "x" +
                        std::to_string(c.imageWidth) + "x" +
                        std::to_string(c.channels);
    double head = 0, total = 0;
    for (const aim::ParamSpec &p : aim::parameterSpecs(c)) {
      double n = static_cast<double>(aim::elementCount(p.shape));
      total += n;
      if (StringRef(p.name).starts_with("head."))
        head += n;
    }
    outs() << format("%-10s %9s %5lld %5lld %3lld %3lld %5lld %3lld %8s %8s\n",
                     c.name.c_str(), image.c_str(), (long long)c.patchSize,
                     (long long)c.width, (long long)c.depth, (long long)c.heads,
                     (long long)c.headWidth, (long long)c.headDepth,
                     humanCount(total - head).c_str(),
                     humanCount(head).c_str());
  }
  outs()
      << "(trunk: patch embedding and blocks; head: the pre-training head)\n";
}
/// Builds the step of `config` with `pipeline` up to `stage`.
mlir::OwningOpRef<mlir::ModuleOp>
compile(mlir::MLIRContext &context, const aim::ModelConfig &config,
        mlir::aim::Stage stage, const mlir::aim::PipelineOptions &pipeline,
        mlir::TimingScope *timing = nullptr) {
  mlir::OwningOpRef<mlir::ModuleOp> module =
      aim::buildForwardModule(context, config, batchOption);
  mlir::PassManager pm(&context);
  if (timing)
    pm.enableTiming(*timing);
  mlir::aim::addStagePipeline(pm, stage, pipeline);
  if (failed(pm.run(*module)))
    return nullptr;
  return module;
}

/// --mesh, --zero, --accumulate and --link-bandwidth, checked against the
/// config and --batch; none without --mesh.
Expected<std::optional<mlir::aim::Mesh>>
meshFromFlags(const aim::ModelConfig &config) {
  auto failure = [](const Twine &message) {
    return createStringError(inconvertibleErrorCode(), message.str());
  };
  if (meshOption.empty()) {
    if (zeroOption != 0 || accumulateOption != 1)
      return failure(std::string(zeroOption != 0 ? "--zero" : "--accumulate") +
                     " belongs to the distributed section: give --mesh too");
    if (bucketBytesOption.getNumOccurrences() > 0)
      return failure("--bucket-bytes schedules the gradient sums of a grid: "
                     "give --mesh dp=D too");
    return std::nullopt;
  }
  Expected<mlir::aim::Mesh> parsed = mlir::aim::parseMesh(meshOption);
  if (!parsed)
    return parsed.takeError();
  if (zeroOption != 0 && zeroOption != 1)
    return failure("--zero is 0 or 1 (ZeRO stage 1)");
  parsed->zero1 = zeroOption == 1;
  if (accumulateOption < 1)
    return failure("--accumulate takes a positive number of micro-batches");
  parsed->accumulate = accumulateOption;
  std::vector<std::string> problems = mlir::aim::checkMesh(
      config, batchOption, prefixModeOption == "antithetic", *parsed);
  if (!problems.empty())
    return failure("--mesh " + meshOption + ": " + llvm::join(problems, "; "));
  if (!(linkBandwidthOption > 0))
    return failure("--link-bandwidth must be positive (bytes/s)");
  if (bucketBytesOption < 0)
    return failure("--bucket-bytes must not be negative (0: no overlap)");
  return std::optional<mlir::aim::Mesh>(*parsed);
}

/// --report=cost: the step without the AIM passes, with the prefix mask, and
/// with fusion (as far as --no-prefix-mask / --no-fuse allow).
int reportCost(const aim::ModelConfig &config) {
  Expected<mlir::aim::TargetDescription> target =
      mlir::aim::loadTargetDescription(targetDescOption);
  if (!target)
    return error(toString(target.takeError()));
  Expected<std::optional<mlir::aim::Mesh>> mesh = meshFromFlags(config);
  if (!mesh)
    return error(toString(mesh.takeError()));
  mlir::MLIRContext context;
  std::vector<mlir::aim::CostVariant> variants;
  auto add = [&](std::string name, bool prefixMask, bool fuse) {
    mlir::aim::PipelineOptions pipeline;
    pipeline.prefixMask = prefixMask;
    pipeline.prefixMode = prefixModeOption;
    pipeline.fuse = fuse;
    pipeline.target = targetDescOption;
    auto module = compile(context, config, mlir::aim::Stage::Kernels, pipeline);
    if (!module)
      return false;
    int64_t arena = 0;
    for (auto function : module->getOps<mlir::func::FuncOp>())
      if (auto bytes =
              function->getAttrOfType<mlir::IntegerAttr>("aim.arena_bytes"))
        arena += bytes.getInt();
    variants.push_back(
        {name, mlir::aim::estimateStepCost(*module, *target), arena});
    return true;
  };
  if (!add("one kernel per op", false, false))
    return 1;
  if (!noPrefixMaskOption && !add("+prefix-mask", true, false))
    return 1;
  if (!noFuseOption && !add(noPrefixMaskOption ? "+fuse" : "+prefix-mask +fuse",
                            !noPrefixMaskOption, true))
    return 1;
  int64_t n = config.numPatches();
  std::string header =
      formatv("cost of one training step: {0}, batch {1}, N = {2} patches\n"
              "prefix lengths: {3}\n",
              config.name, batchOption.getValue(), n,
              prefixModeOption == "antithetic"
                  ? formatv("antithetic pairs (K, N-K), K uniform on [1, {0}]: "
                            "{1} live head rows of {2} (B*N/2)",
                            n - 1, batchOption * n / 2, batchOption * n)
                        .str()
                  : formatv("iid, K uniform on [1, {0}]: head computed for "
                            "the upper bound B*(N-1) = {1} rows",
                            n - 1, batchOption * (n - 1))
                        .str())
          .str();
  header += "attention with a tile rule counts the (query, key) pairs it "
            "visits, averaged over K\n";
  std::string errorMessage;
  auto output = mlir::openOutputFile(outputOption, &errorMessage);
  if (!output)
    return error(errorMessage);
  mlir::aim::printCostReport(output->os(), header, *target, variants);
  if (*mesh)
    mlir::aim::printDistributedCost(
        output->os(), config, batchOption, *target, **mesh, linkBandwidthOption,
        mlir::aim::estimateDistributedCost(config, batchOption,
                                           variants.back().cost, *target,
                                           **mesh, linkBandwidthOption));
  output->keep();
  return 0;
}
/// --target host[,sm_90a]: the step through every pass, compiled for each
/// target, linked and written as one .aimx artifact.
int compileArtifact(const aim::ModelConfig &config) {
  llvm::SmallVector<StringRef> targets;
  StringRef(targetOption).split(targets, ',', -1, false);
  bool forHost = false;
  std::string gpuChip;
  for (StringRef t : targets) {
    if (t == "host") {
      forHost = true;
    } else if (llvm::is_contained(mlir::aim::supportedGpuChips(), t.str())) {
      if (!gpuChip.empty() && gpuChip != t)
        return error("--target names two GPU chips (" + gpuChip + ", " + t +
                     "); an artifact carries code for one");
      gpuChip = t.str();
    } else {
      return error("--target " + t + " is not supported; the targets: host, " +
                   llvm::join(mlir::aim::supportedGpuChips(), ", "));
    }
  }
  if (!forHost && gpuChip.empty())
    return error("--target names no target (host, sm_90a)");
  if (gpuChip.empty())
    if (std::optional<std::string> flag = gpuOnlyFlagGiven())
      return error(*flag + " chooses how GPU code is built: add a GPU to "
                           "--target (e.g. --target host,sm_90a)");
  if (outputOption == "-")
    return error("--target writes a binary artifact: give -o <file>.aimx");
  // --mesh: the program of one rank (host or GPU code).
  Expected<std::optional<mlir::aim::Mesh>> mesh = meshFromFlags(config);
  if (!mesh)
    return error(toString(mesh.takeError()));
  mlir::aim::PipelineOptions pipeline = pipelineFromFlags();
  if (*mesh) {
    if ((*mesh)->accumulate != 1)
      return error("--accumulate with --target: compile one micro-batch "
                   "(--batch) and train with aim-run --accumulate");
    pipeline.grid = true;
    pipeline.dataParallel = (*mesh)->dp;
    pipeline.tensorParallel = (*mesh)->tp;
    pipeline.zero = (*mesh)->zero1;
    pipeline.bucketBytes = bucketBytesOption;
  }
  // --mlir-timing: the AIM passes one by one, then the host code, the GPU
  // code (kernels, NVPTX, ptxas) and the link of each.
  mlir::DefaultTimingManager timing;
  mlir::applyDefaultTimingManagerCLOptions(timing);
  mlir::TimingScope rootTiming = timing.getRootScope();
  mlir::MLIRContext context;
  // GPU code with bfloat16 GEMM operands rounds them in the aim IR, before
  // fusion (aim-bf16-gemm-operands); the host code stays float32, so with
  // both the AIM passes run twice.
  std::optional<mlir::aim::GpuCompileOptions> gpu;
  bool roundsInAimIr = false;
  if (!gpuChip.empty()) {
    gpu = gpuOptionsFromFlags(gpuChip);
    Expected<bool> rounds = gpuRoundsInAimIr(*gpu);
    if (!rounds)
      return error(toString(rounds.takeError()));
    roundsInAimIr = *rounds;
  }
  mlir::aim::PipelineOptions gpuPipeline = pipeline;
  gpuPipeline.bf16GemmOperands = roundsInAimIr;
  mlir::TimingScope passTiming = rootTiming.nest("AIM passes");
  mlir::OwningOpRef<mlir::ModuleOp> module =
      compile(context, config, mlir::aim::Stage::Kernels,
              forHost ? pipeline : gpuPipeline, &passTiming);
  if (!module)
    return 1;
  mlir::OwningOpRef<mlir::ModuleOp> gpuModule;
  if (forHost && roundsInAimIr) {
    gpuModule = compile(context, config, mlir::aim::Stage::Kernels, gpuPipeline,
                        &passTiming);
    if (!gpuModule)
      return 1;
  }
  passTiming.stop();
  // For aim-run's pictures: the head's output at every position.
  aim::addPredictFunction(*module, config, batchOption);
  if (gpuModule)
    aim::addPredictFunction(*gpuModule, config, batchOption);
  else if (gpu)
    gpuModule = module->clone();
  mlir::aim::ArtifactContents contents;
  contents.config = &config;
  contents.batch = batchOption;
  contents.prefixMode =
      noPrefixMaskOption ? std::string("any") : prefixModeOption.getValue();
  contents.isa = cpuOption;
  std::string summary;
  if (forHost) {
    mlir::TimingScope hostTiming = rootTiming.nest("host code and its link");
    mlir::OwningOpRef<mlir::ModuleOp> lowered = module->clone();
    mlir::aim::HostCompileOptions host;
    host.cpu = cpuOption;
    host.blas = hostBlasOption;
    Expected<mlir::aim::HostObject> object =
        mlir::aim::compileToObject(*lowered, host);
    if (!object)
      return error(toString(object.takeError()));
    Expected<std::string> library = mlir::aim::linkSharedObject(object->bytes);
    if (!library)
      return error(toString(library.takeError()));
    contents.sharedObject = std::move(*library);
    summary += formatv("; host code for {0}: {1} kernel calls, {2} distinct "
                       "kernels compiled",
                       cpuOption.getValue(), object->kernelLaunches,
                       object->distinctKernels);
  }
  if (!gpuChip.empty()) {
    mlir::TimingScope gpuTiming =
        rootTiming.nest("GPU code (kernels, NVPTX, ptxas, launcher code)");
    Expected<mlir::aim::GpuProgram> program =
        mlir::aim::compileGpuProgram(*gpuModule, *gpu, cpuOption);
    gpuTiming.stop();
    if (!program)
      return error(toString(program.takeError()));
    mlir::TimingScope linkTiming = rootTiming.nest("GPU launcher code's link");
    Expected<std::string> library =
        mlir::aim::linkSharedObject(program->hostObject);
    linkTiming.stop();
    if (!library)
      return error(toString(library.takeError()));
    contents.gpuChip = gpuChip;
    contents.gpuHostTouchesMemory = program->kernels.hostTouchesMemory;
    contents.gpuBf16GemmOperands = gpu->bf16GemmOperands;
    contents.gpuAttention = gpu->attention == AttentionLowering::Tiled ? "tiled"
                            : gpu->attention == AttentionLowering::Flash
                                ? "flash"
                                : "";
    contents.gpuGemmKernel =
        gpu->gemmKernel == mlir::aim::GemmKernel::Wgmma ? "wgmma" : "";
    contents.gpuGemms = program->kernels.gemms;
    contents.gpuResultsSharingArguments =
        program->kernels.resultsSharingArguments;
    contents.gpuSharedObject = std::move(*library);
    Expected<mlir::aim::TargetDescription> target =
        mlir::aim::loadTargetDescription(targetDescOption);
    if (!target)
      return error(toString(target.takeError()));
    contents.gpuVectorFlops = target->vectorFlops;
    contents.gpuMemoryBandwidth = target->memoryBandwidth;
    int spilling = 0;
    for (const mlir::aim::GpuKernelInfo &k : program->kernels.kernels) {
      int spill = k.spillStoreBytes + k.spillLoadBytes;
      // Scalar float32 code: the CUDA cores' peak; MMAs (flash attention,
      // the generated GEMMs): the tensor cores'.
      double roofline = std::max(
          k.bytes / target->memoryBandwidth,
          k.flops / (k.tensorCores ? target->tensorFlops : target->vectorFlops));
      contents.gpuKernels.push_back({k.name, k.registers, k.sharedBytes, spill,
                                     k.bytes, k.flops, roofline});
      spilling += spill > 0;
    }
    summary +=
        formatv("; {0} code: {1} GPU kernels ({2} spilling), "
                "launched by {3} calls of {4} distinct kernels{5}",
                gpuChip, program->kernels.kernels.size(), spilling,
                program->kernels.kernelCalls, program->kernels.distinctKernels,
                program->kernels.hostTouchesMemory
                    ? ", each launch synchronised (host code reads "
                      "buffers between them)"
                    : ", asynchronous");
    for (const auto &[entry, names] : program->kernels.resultsSharingArguments)
      summary += formatv("; {0} writes {1} results into their arguments' "
                         "buffers",
                         entry, names.size());
  }
  std::string bytes = mlir::aim::buildArtifact(*module, contents);
  if (aim::Status s = aim::writeFileAtomically(outputOption, bytes); !s)
    return error(s.message());
  outs() << "wrote " << outputOption << " (" << bytes.size() / 1024
         << " KiB: " << config.name << ", batch " << batchOption.getValue()
         << summary << ")\n";
  return 0;
}

/// --report=gpu-kernels: every kernel of the training step as PTX, assembled.
int reportGpuKernels(const aim::ModelConfig &config) {
  mlir::MLIRContext context;
  mlir::aim::GpuCompileOptions gpu = gpuOptionsFromFlags(gpuChipOption);
  mlir::aim::PipelineOptions pipeline = pipelineFromFlags();
  Expected<bool> roundsInAimIr = gpuRoundsInAimIr(gpu);
  if (!roundsInAimIr)
    return error(toString(roundsInAimIr.takeError()));
  pipeline.bf16GemmOperands = *roundsInAimIr;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      compile(context, config, mlir::aim::Stage::Kernels, pipeline);
  if (!module)
    return 1;
  Expected<mlir::aim::GpuObject> object = mlir::aim::compileToPtx(*module, gpu);
  if (!object)
    return error(toString(object.takeError()));
  if (Error e = mlir::aim::assembleWithPtxas(*object, gpu))
    return error(toString(std::move(e)));
  if (outputOption != "-") {
    if (aim::Status s = aim::writeFileAtomically(outputOption, object->ptx); !s)
      return error(s.message());
  }
  int spilling = 0, maxRegisters = 0;
  outs() << formatv("{0,-40} {1,9} {2,12} {3,11} {4,10}\n", "kernel",
                    "registers", "spill bytes", "stack bytes", "smem bytes");
  for (const mlir::aim::GpuKernelInfo &k : object->kernels) {
    outs() << formatv("{0,-40} {1,9} {2,12} {3,11} {4,10}\n", k.name,
                      k.registers, k.spillStoreBytes + k.spillLoadBytes,
                      k.stackBytes, k.sharedBytes);
    spilling += k.spillStoreBytes + k.spillLoadBytes > 0;
    maxRegisters = std::max(maxRegisters, k.registers);
  }
  outs() << formatv("{0} kernels for {1} ({2}, batch {3}): assembled by "
                    "ptxas, {4} spilling, at most {5} registers\n",
                    object->kernels.size(), gpuChipOption.getValue(),
                    config.name, batchOption.getValue(), spilling,
                    maxRegisters);
  printGemmChoices(object->gemms);
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  // The MLIR flags (--mlir-print-ir-after-all, --mlir-timing, ...) apply to the
  // pass pipeline aimc runs for the requested stage.
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  // LLVM's own flags would bury ours in --help; they still parse, and
  // --help-hidden lists them.
  cl::HideUnrelatedOptions(aimcCategory);
  cl::ParseCommandLineOptions(
      argc, argv,
      "aimc: compiles an autoregressive image model (AIM) config\n\n"
      "  aimc --model aim-fmnist --batch 8 --emit=aim\n"
      "  aimc --model my-model.yaml --emit=aim -o forward.mlir\n"
      "  aimc --model aim-fmnist --emit=train -o train.mlir\n"
      "  aimc --model aim-600m --batch 64 --report=cost [--target-desc l4]\n"
      "  aimc --model aim-7b --batch 4096 --report=cost --mesh dp=4,tp=2 "
      "--accumulate 64 [--zero=1]\n"
      "  aimc --model aim-fmnist --batch 16 --mesh dp=2,tp=2 --zero=1 "
      "--emit=train\n"
      "  aimc --model aim-fmnist --batch 16 --mesh tp=2 --target host -o "
      "tp2.aimx\n"
      "  aimc --model my-model.yaml --batch 8 --target host -o m.aimx\n"
      "  aimc --model aim-fmnist --batch 16 --target host,sm_90a -o m.aimx\n"
      "  aimc --model aim-fmnist --batch 16 --report=gpu-kernels -o k.ptx\n"
      "  aimc --list-presets\n\n"
      "MLIR's flags apply to the passes of the chosen stage "
      "(--mlir-print-ir-after-all,\n--mlir-timing, ...; see --help-hidden).\n");

  if (listPresetsOption) {
    listPresets();
    return 0;
  }
  if (modelOption.empty())
    return error("no model given: pass --model <preset|file> (presets: "
                 "--list-presets)");
  if (prefixModeOption != "antithetic" && prefixModeOption != "iid")
    return error("--prefix-mode must be antithetic or iid, got '" +
                 Twine(prefixModeOption) + "'");
  if (batchOption <= 0)
    return error("--batch must be a positive integer, got " +
                 Twine(batchOption));

  Expected<aim::ModelConfig> config = aim::loadModelConfig(modelOption);
  if (!config)
    return error(toString(config.takeError()));
  if (reportOption == Report::Cost)
    return reportCost(*config);
  if (reportOption == Report::GpuKernels) {
    if (!meshOption.empty())
      return error("--report=gpu-kernels compiles the whole step: drop --mesh");
    return reportGpuKernels(*config);
  }
  if (!targetOption.empty())
    return compileArtifact(*config);
  if (std::optional<std::string> flag = gpuOnlyFlagGiven())
    return error(*flag + " chooses how GPU code is built: it goes with "
                         "--target sm_90a or --report=gpu-kernels");

  // --mlir-timing reports the frontend, the verifier and every pass.
  mlir::DefaultTimingManager timing;
  mlir::applyDefaultTimingManagerCLOptions(timing);
  mlir::TimingScope rootTiming = timing.getRootScope();

  // On a grid: the program of one rank for one micro-batch of the step.
  Expected<std::optional<mlir::aim::Mesh>> mesh = meshFromFlags(*config);
  if (!mesh)
    return error(toString(mesh.takeError()));
  mlir::aim::PipelineOptions pipeline = pipelineFromFlags();
  int64_t batch = batchOption;
  if (*mesh) {
    pipeline.grid = true;
    pipeline.dataParallel = (*mesh)->dp;
    pipeline.tensorParallel = (*mesh)->tp;
    pipeline.zero = (*mesh)->zero1;
    pipeline.bucketBytes = bucketBytesOption;
    batch /= (*mesh)->accumulate;
  }

  mlir::MLIRContext context;
  mlir::TimingScope buildTiming = rootTiming.nest("build forward IR");
  mlir::OwningOpRef<mlir::ModuleOp> module =
      aim::buildForwardModule(context, *config, batch);
  buildTiming.stop();
  mlir::TimingScope verifyTiming = rootTiming.nest("verify forward IR");
  if (failed(mlir::verify(*module)))
    return error("internal error: the frontend built invalid IR for '" +
                 Twine(config->name) + "'");
  verifyTiming.stop();

  mlir::PassManager pm(&context);
  if (failed(mlir::applyPassManagerCLOptions(pm)))
    return error("invalid pass manager options");
  pm.enableTiming(rootTiming);
  mlir::aim::addStagePipeline(pm, emitOption, pipeline);
  if (failed(pm.run(*module)))
    return 1;

  std::string errorMessage;
  auto output = mlir::openOutputFile(outputOption, &errorMessage);
  if (!output)
    return error(errorMessage);
  module->print(output->os());
  output->os() << "\n";
  output->keep();
  return 0;
}
