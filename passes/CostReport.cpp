//===- CostReport.cpp - the cost report printed by aimc --report=cost -----===//
#include "passes/CostReport.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir::aim {

namespace {
std::string engineering(double value, const char *unit) {
  const char *prefixes[] = {"", "K", "M", "G", "T", "P"};
  int i = 0;
  while (std::abs(value) >= 1000 && i < 5) {
    value /= 1000;
    ++i;
  }
  return llvm::formatv("{0:F2} {1}{2}", value, prefixes[i], unit).str();
}
} // namespace

void printCostReport(llvm::raw_ostream &os, llvm::StringRef header,
                     const TargetDescription &target,
                     llvm::ArrayRef<CostVariant> variants) {
  const CostVariant &final = variants.back();
  os << header;
  os << "target " << target.name << ": "
     << engineering(target.tensorFlops, "FLOP/s") << " tensor, "
     << engineering(target.vectorFlops, "FLOP/s") << " vector, "
     << engineering(target.memoryBandwidth, "B/s") << ", launch "
     << llvm::format("%.1f us", target.kernelLaunchSeconds * 1e6) << "\n";
  os << "roofline time of a kernel = max(compute, memory) + launch\n\n";

  os << "kernels of @" << final.cost.entry << " (" << final.name << "):\n";
  os << llvm::format("%5s  %-40s %-24s %4s %12s %12s %10s  %s\n", "#", "scope",
                     "kind", "ops", "GFLOP", "MB", "time us", "bound");
  for (auto [i, k] : llvm::enumerate(final.cost.kernels))
    os << llvm::format("%5zu  %-40s %-24s %4lld %12.4f %12.3f %10.2f  %s\n", i,
                       k.name.c_str(), k.kind.c_str(), (long long)k.ops,
                       k.flops / 1e9, k.bytes / 1e6, k.seconds * 1e6,
                       k.computeBound ? "compute" : "memory");

  os << "\ntotals of one training step:\n";
  os << llvm::format("  %-28s %8s %14s %12s %12s %12s %12s\n", "variant",
                     "kernels", "GFLOP", "GB moved", "time ms", "act peak GB",
                     "state GB");
  for (const CostVariant &v : variants)
    os << llvm::format("  %-28s %8zu %14.2f %12.3f %12.3f %12.3f %12.3f\n",
                       v.name.c_str(), v.cost.kernels.size(),
                       v.cost.flops / 1e9, v.cost.bytes / 1e9,
                       v.cost.seconds * 1e3, v.cost.peakActivationBytes / 1e9,
                       v.cost.persistentBytes / 1e9);
  for (size_t i = 1; i < variants.size(); ++i) {
    const StepCost &a = variants[i - 1].cost, &b = variants[i].cost;
    os << llvm::format(
        "  %-28s %8lld %14.2f %12.3f %12.3f %12.3f\n",
        ("removed by " + variants[i].name.substr(
                             variants[i].name.rfind('+') == std::string::npos
                                 ? 0
                                 : variants[i].name.rfind('+')))
            .c_str(),
        (long long)a.kernels.size() - (long long)b.kernels.size(),
        (a.flops - b.flops) / 1e9, (a.bytes - b.bytes) / 1e9,
        (a.seconds - b.seconds) * 1e3,
        (a.peakActivationBytes - b.peakActivationBytes) / 1e9);
  }
  double peak = final.cost.persistentBytes + final.cost.peakActivationBytes;
  os << llvm::format(
      "\npeak device memory (%s): %.3f GB = %.3f GB state + "
      "%.3f GB activations, of %.0f GB\n",
      final.name.c_str(), peak / 1e9, final.cost.persistentBytes / 1e9,
      final.cost.peakActivationBytes / 1e9, target.memoryBytes / 1e9);
  os << llvm::format("activation arena of aim-plan-memory (%s, element types "
                     "of the IR): %.3f GB\n",
                     final.name.c_str(), final.arenaBytes / 1e9);
}

} // namespace mlir::aim
