//===- WgmmaGemm.h - a generated sm_90a GEMM: TMA, mbarriers, wgmma -*- C++
//-*-===//
//
// `aimc --gemm-kernel=wgmma` (docs/gpu-codegen.md, "Generated GEMMs"): a GEMM
// with its epilogue, D = A B^T (+ bias) (+ residual), A [M, K] and B [N, K]
// bfloat16 row-major (a linear layer's x and W), D float32, as one kernel
// instead of a cuBLASLt call.
//
// A block is two warpgroups (256 threads) and computes a 128 x 128 tile of
// D, a warpgroup 64 rows of it with wgmma.mma_async.m64n128k16 (float32
// accumulators in registers, 64 a thread). Thread 0 copies each 64-deep
// slice of A's and B's tiles into shared memory with the tensor memory
// accelerator (cp.async.bulk.tensor.2d, 128-byte swizzle, zeros past the
// matrices' edges), kGemmStages slices in flight; an mbarrier a stage counts
// the bytes in, the warpgroups wait on its phase, multiply straight from
// shared memory (matrix descriptors: K-major, 128-byte swizzle, 1024 bytes
// between 8-row groups) and, once a stage's products are done
// (wgmma.wait_group 1 and a block barrier), thread 0 refills it. The
// epilogue adds the bias and the residual to the accumulators and stores D.
//
// The tensor maps (CUtensorMap, 128 bytes) are encoded by the runtime
// (aimcCudaTensorMap, over cuTensorMapEncodeTiled) in the launcher code,
// passed to the kernel as parameters and written by it to a global scratch
// buffer, which the TMA reads (after the generic-to-tensormap proxy
// fences).
//
// The host backend runs the same schedule (KernelTarget::HostEmulation):
// its "TMA" copies a box into an emulated shared memory with the swizzle,
// and each wgmma is a call of a module function that decodes the matrix
// descriptors and computes the product element by element from the PTX
// ISA's accumulator layout -- so that the stages, coordinates, descriptors
// and the epilogue's register-to-element map are checked on the CPU.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_WGMMAGEMM_H
#define AIMC_CODEGEN_KERNELS_WGMMAGEMM_H

#include "codegen/kernels/KernelBuilding.h"

namespace mlir::aim {

/// Which kernels compute the GEMMs that carry their epilogue.
enum class GemmKernel {
  /// A library call: cuBLASLt on the GPU (aimcCudaGemm), cblas_sgemm on
  /// the host.
  Library,
  /// The generated kernel above where wgmmaGemmApplies, else the library.
  Wgmma,
};

/// The tile of D a block computes, the depth of a stage, the stages: three
/// of 32 KB (97 KB of shared memory with the alignment) let two blocks
/// share an SM (228 KB), so that one's epilogue overlaps the other's
/// products; four would take 129 KB, one block an SM.
inline constexpr int64_t kGemmTileM = 128;
inline constexpr int64_t kGemmTileN = 128;
inline constexpr int64_t kGemmTileK = 64;
inline constexpr int64_t kGemmStages = 3;

/// The runtime function that encodes a tensor map (GPU launcher code):
/// void(ptr out /*16 x i64*/, ptr base, i64 rows, i64 cols, i32 boxRows,
/// i32 boxCols), a bfloat16 row-major [rows, cols] matrix.
inline constexpr const char *kTensorMapSymbol = "aimcCudaTensorMap";

/// The gpu.launch attribute with the bytes a kernel reads that are not
/// captured buffers (the generated GEMMs' A and B, through tensor maps),
/// for its roofline (NvptxCompiler.cpp, recordLaunchCosts).
inline constexpr const char *kLaunchOperandBytes = "aim.operand_bytes";

/// The documented rule: the generated kernel computes a GEMM with
/// epilogue whose A is not transposed and whose B is (A [M, K], B [N, K]:
/// both K-major, as wgmma reads bfloat16 without transposing) and whose
/// operands start and have rows on 16-byte boundaries (K % 8 == 0 and
/// offsets multiples of 8 elements: what the TMA takes). Any M, N and K
/// otherwise (the TMA fills past the edges with zeros; the epilogue stores
/// only inside D).
bool wgmmaGemmApplies(bool transposeA, bool transposeB, MemRefType a,
                      MemRefType b);

/// Emits the kernel (a gpu.launch, or its host emulation) before `b`'s
/// insertion point: D = A B^T (+ bias[j] on column j) (+ residual), `a`
/// memref<M x K>, `bm` memref<N x K> (bfloat16 on the GPU, bfloat16 values
/// held as float32 on the host), `d` and `residual` memref<M x N xf32>,
/// `bias` memref<N xf32>; bias and residual may be null.
void emitWgmmaGemm(OpBuilder &b, Location loc, KernelTarget target, Value a,
                   Value bm, Value d, Value bias, Value residual);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_WGMMAGEMM_H
