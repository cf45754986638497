//===- ArtifactWriter.cpp - a compiled step as a .aimx file ---------------===//
#include "codegen/artifact/ArtifactWriter.h"

#include "common/Philox.h"
#include "dialects/aim/AimDialect.h"
#include "dialects/aim/AimSharding.h"
#include "runtime/schema/aimx_generated.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinTypes.h"

namespace mlir::aim {

namespace {
namespace fb = ::aim::aimx;

fb::ElementType elementTypeOf(Type t) {
  if (t.isF64())
    return fb::ElementType::F64;
  if (t.isBF16())
    return fb::ElementType::BF16;
  if (t.isF16())
    return fb::ElementType::F16;
  if (t.isInteger(32))
    return fb::ElementType::I32;
  if (t.isInteger(64))
    return fb::ElementType::I64;
  return fb::ElementType::F32;
}

std::string configJson(const ::aim::ModelConfig &c) {
  return "{\"name\": \"" + c.name + "\", \"image_size\": [" +
         std::to_string(c.imageHeight) + ", " + std::to_string(c.imageWidth) +
         "], \"channels\": " + std::to_string(c.channels) +
         ", \"patch_size\": " + std::to_string(c.patchSize) +
         ", \"width\": " + std::to_string(c.width) +
         ", \"depth\": " + std::to_string(c.depth) +
         ", \"heads\": " + std::to_string(c.heads) +
         ", \"mlp_ratio\": " + std::to_string(c.mlpRatio) +
         ", \"head_width\": " + std::to_string(c.headWidth) +
         ", \"head_depth\": " + std::to_string(c.headDepth) +
         ", \"head_mlp_ratio\": " + std::to_string(c.headMlpRatio) +
         ", \"gelu\": \"" + c.gelu + "\"}";
}
} // namespace

std::string buildArtifact(ModuleOp module, const ArtifactContents &contents) {
  flatbuffers::FlatBufferBuilder fbb;
  auto tensor = [&](func::FuncOp f, unsigned i, bool result) {
    DictionaryAttr attrs =
        result ? f.getResultAttrDict(i) : f.getArgAttrDict(i);
    Type type = result ? f.getResultTypes()[i] : f.getArgumentTypes()[i];
    auto ranked = cast<RankedTensorType>(type);
    fb::Role role = result ? fb::Role::Output : fb::Role::Input;
    std::string name;
    if (attrs) {
      if (auto n = attrs.getAs<StringAttr>(AimDialect::kParamAttrName)) {
        role = fb::Role::Parameter;
        name = n.str();
      } else if (auto n = attrs.getAs<StringAttr>(AimDialect::kStateAttrName)) {
        role = fb::Role::State;
        name = n.str();
      } else if (auto n = attrs.getAs<StringAttr>(AimDialect::kInputAttrName)) {
        name = n.str();
      } else if (auto n =
                     attrs.getAs<StringAttr>(AimDialect::kOutputAttrName)) {
        name = n.str();
      }
    }
    std::vector<int64_t> shape(ranked.getShape().begin(),
                               ranked.getShape().end());
    flatbuffers::Offset<fb::Sharding> sharding;
    if (auto given =
            attrs ? attrs.getAs<DictionaryAttr>(AimDialect::kShardingAttrName)
                  : DictionaryAttr()) {
      ::aim::TensorSharding s = readSharding(given);
      sharding = fb::CreateSharding(fbb, s.tpDim, s.tpGroups, s.dpDim);
    }
    return fb::CreateTensorDirect(fbb, name.c_str(), role,
                                  elementTypeOf(ranked.getElementType()),
                                  &shape, sharding);
  };
  std::vector<flatbuffers::Offset<fb::EntryPoint>> entries;
  for (auto f : module.getOps<func::FuncOp>()) {
    std::vector<flatbuffers::Offset<fb::Tensor>> args, results;
    for (unsigned i = 0; i < f.getNumArguments(); ++i)
      args.push_back(tensor(f, i, false));
    for (unsigned i = 0; i < f.getNumResults(); ++i)
      results.push_back(tensor(f, i, true));
    int64_t arena = 0;
    if (auto a = f->getAttrOfType<IntegerAttr>("aim.arena_bytes"))
      arena = a.getInt();
    std::string name = f.getSymName().str(), symbol = name + "_packed";
    entries.push_back(fb::CreateEntryPointDirect(
        fbb, name.c_str(), symbol.c_str(), &args, &results, arena));
  }
  std::vector<flatbuffers::Offset<fb::Parameter>> params;
  for (const ::aim::ParamSpec &p : ::aim::parameterSpecs(*contents.config)) {
    fb::InitKind init = p.init == ::aim::InitKind::Zeros ? fb::InitKind::Zeros
                        : p.init == ::aim::InitKind::Ones
                            ? fb::InitKind::Ones
                            : fb::InitKind::XavierUniform;
    params.push_back(fb::CreateParameterDirect(fbb, p.name.c_str(), &p.shape,
                                               init, p.weightDecay));
  }
  auto sharedObject = [&](const std::string &bytes) {
    std::vector<uint8_t> code(bytes.begin(), bytes.end());
    return fb::CreateHostCodeDirect(fbb, contents.isa.c_str(), &code,
                                    ::aim::fnv1a64(code.data(), code.size()));
  };
  flatbuffers::Offset<fb::HostCode> host;
  if (!contents.sharedObject.empty())
    host = sharedObject(contents.sharedObject);
  flatbuffers::Offset<fb::GpuCode> gpu;
  if (!contents.gpuChip.empty()) {
    std::vector<flatbuffers::Offset<fb::GpuKernel>> kernels;
    for (const ArtifactContents::GpuKernel &k : contents.gpuKernels)
      kernels.push_back(fb::CreateGpuKernelDirect(
          fbb, k.name.c_str(), k.registers, k.sharedBytes, k.spillBytes,
          k.bytes, k.flops, k.rooflineSeconds));
    std::vector<flatbuffers::Offset<fb::InPlaceResults>> inPlace;
    for (const auto &[entry, names] : contents.gpuResultsSharingArguments) {
      std::vector<flatbuffers::Offset<flatbuffers::String>> tensors;
      for (const std::string &n : names)
        tensors.push_back(fbb.CreateString(n));
      inPlace.push_back(
          fb::CreateInPlaceResultsDirect(fbb, entry.c_str(), &tensors));
    }
    std::vector<flatbuffers::Offset<fb::GemmChoice>> gemms;
    for (const GemmChoice &g : contents.gpuGemms)
      gemms.push_back(fb::CreateGemmChoiceDirect(
          fbb, g.site.c_str(), g.m, g.n, g.k, g.transposeA, g.transposeB,
          g.bias, g.residual,
          g.kernel == GemmKernel::Wgmma ? "wgmma" : "cublaslt"));
    gpu = fb::CreateGpuCodeDirect(
        fbb, contents.gpuChip.c_str(), sharedObject(contents.gpuSharedObject),
        &kernels, contents.gpuHostTouchesMemory, contents.gpuVectorFlops,
        contents.gpuMemoryBandwidth, &inPlace,
        contents.gpuBf16GemmOperands ? "bf16" : nullptr,
        contents.gpuAttention.empty() ? nullptr : contents.gpuAttention.c_str(),
        contents.gpuGemmKernel.empty() ? nullptr
                                       : contents.gpuGemmKernel.c_str(),
        &gemms);
  }
  flatbuffers::Offset<fb::Grid> grid;
  if (auto mesh = module.lookupSymbol<shard::GridOp>("mesh")) {
    auto zero = module->getAttrOfType<IntegerAttr>(AimDialect::kZeroAttrName);
    grid = fb::CreateGrid(fbb, mesh.getShape()[0], mesh.getShape()[1],
                          zero && zero.getInt() == 1);
  }
  const ::aim::ModelConfig &c = *contents.config;
  auto root = fb::CreateArtifactDirect(
      fbb, static_cast<uint32_t>(fb::SchemaVersion::Current), "aimc 0.1",
      c.name.c_str(), configJson(c).c_str(), contents.batch, c.channels,
      c.imageHeight, c.imageWidth, c.numPatches(), contents.prefixMode.c_str(),
      &params, &entries, host, gpu, grid);
  fb::FinishArtifactBuffer(fbb, root);
  return std::string(reinterpret_cast<const char *>(fbb.GetBufferPointer()),
                     fbb.GetSize());
}

} // namespace mlir::aim
