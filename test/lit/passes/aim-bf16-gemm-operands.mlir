// RUN: aim-opt %s --split-input-file --aim-bf16-gemm-operands | FileCheck %s
// RUN: aim-opt %s --split-input-file --aim-bf16-gemm-operands --aim-fuse | FileCheck %s --check-prefix=FUSED

// A forward linear and the backward's weight gradient, which reads the
// same saved activation as a matrix: one bf16 copy of the activation (made
// right after GELU computes it; the backward reshapes that copy) and one of
// the weight (an argument: at the function's start), read by both GEMMs;
// the bias and the results stay float32.
// CHECK-LABEL: func.func @loss_and_grads
// CHECK-SAME: (%[[X:[^:]+]]: tensor<2x3x8xf32>, %[[W:[^:]+]]: tensor<4x8xf32>, %[[B:[^:]+]]: tensor<4xf32>, %[[DY:[^:]+]]: tensor<6x4xf32>)
// CHECK-NEXT: %[[WB:.+]] = aim.cast %[[W]] {aim.scope = "mlp.fc2"} : tensor<4x8xf32> -> tensor<4x8xbf16>
// CHECK-NEXT: %[[DYB:.+]] = aim.cast %[[DY]] : tensor<6x4xf32> -> tensor<6x4xbf16>
// CHECK-NEXT: %[[G:.+]] = aim.gelu %[[X]]
// CHECK-NEXT: %[[GB:.+]] = aim.cast %[[G]] {aim.scope = "mlp.act"} : tensor<2x3x8xf32> -> tensor<2x3x8xbf16>
// CHECK-NEXT: %[[Y:.+]] = aim.linear %[[GB]], %[[WB]], %[[B]] {aim.scope = "mlp.fc2"} : tensor<2x3x8xbf16>, tensor<4x8xbf16>, tensor<4xf32> -> tensor<2x3x4xf32>
// CHECK-NEXT: %[[GM:.+]] = aim.reshape %[[GB]] {aim.scope = "mlp.fc2.grad"} : tensor<2x3x8xbf16> -> tensor<6x8xbf16>
// CHECK-NEXT: %[[DW:.+]] = aim.matmul %[[DYB]], %[[GM]], transpose_lhs = true, transpose_rhs = false : tensor<6x4xbf16>, tensor<6x8xbf16> -> tensor<4x8xf32>
// CHECK-NEXT: %[[DX:.+]] = aim.matmul %[[DYB]], %[[WB]], transpose_lhs = false, transpose_rhs = false : tensor<6x4xbf16>, tensor<4x8xbf16> -> tensor<6x8xf32>
// CHECK-NEXT: return %[[Y]], %[[DW]], %[[DX]]
// CHECK-NOT: aim.cast

// In kernels: GELU's kernel writes only the copy (nothing else reads its
// float32 result now); the weight's copy is a kernel of its own, once.
// FUSED-LABEL: func.func @loss_and_grads
// FUSED: aim.cast %{{.*}} : tensor<4x8xf32> -> tensor<4x8xbf16>
// FUSED: aim.fusion "elementwise"
// FUSED-NEXT: ^bb0(
// FUSED-NEXT: aim.gelu
// FUSED-NEXT: aim.cast
// FUSED-NEXT: aim.yield %{{.*}} : tensor<2x3x8xbf16>
// FUSED-NOT: aim.cast %{{.*}} : tensor<4x8xf32>
func.func @loss_and_grads(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4xf32>, %dy: tensor<6x4xf32>)
    -> (tensor<2x3x4xf32>, tensor<4x8xf32>, tensor<6x8xf32>) {
  %g = aim.gelu %x, approximation = erf {aim.scope = "mlp.act"} : tensor<2x3x8xf32> -> tensor<2x3x8xf32>
  %y = aim.linear %g, %w, %b {aim.scope = "mlp.fc2"} : tensor<2x3x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<2x3x4xf32>
  %gm = aim.reshape %g {aim.scope = "mlp.fc2.grad"} : tensor<2x3x8xf32> -> tensor<6x8xf32>
  %dw = aim.matmul %dy, %gm, transpose_lhs = true, transpose_rhs = false : tensor<6x4xf32>, tensor<6x8xf32> -> tensor<4x8xf32>
  %dx = aim.matmul %dy, %w, transpose_lhs = false, transpose_rhs = false : tensor<6x4xf32>, tensor<4x8xf32> -> tensor<6x8xf32>
  return %y, %dw, %dx : tensor<2x3x4xf32>, tensor<4x8xf32>, tensor<6x8xf32>
}

// -----

// A value with other uses (a layer norm's output, also returned): its
// kernel writes the float32 result and the copy (the layer norm's kernel
// yields both).
// CHECK-LABEL: func.func @loss_and_grads
// FUSED-LABEL: func.func @loss_and_grads
// FUSED: %[[K:.+]]:2 = aim.fusion "layer_norm"
// FUSED-NEXT: ^bb0(
// FUSED-NEXT: aim.layer_norm
// FUSED-NEXT: aim.cast
// FUSED-NEXT: aim.yield %{{.*}}, %{{.*}} : tensor<8x16xf32>, tensor<8x16xbf16>
// FUSED: aim.linear %[[K]]#1
// FUSED: return %{{.*}}, %[[K]]#0
func.func @loss_and_grads(%x: tensor<8x16xf32>, %g: tensor<16xf32>, %be: tensor<16xf32>, %w: tensor<4x16xf32>)
    -> (tensor<8x4xf32>, tensor<8x16xf32>) {
  %n = aim.layer_norm %x, %g, %be, epsilon = 1.0e-6 : tensor<8x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<8x16xf32>
  %y = aim.linear %n, %w : tensor<8x16xf32>, tensor<4x16xf32> -> tensor<8x4xf32>
  return %y, %n : tensor<8x4xf32>, tensor<8x16xf32>
}

// -----

// GEMMs that are not float32 are left as they are.
// CHECK-LABEL: func.func @loss_and_grads
// CHECK-NOT: aim.cast
// CHECK: aim.linear %{{.*}}, %{{.*}} : tensor<8x16xbf16>, tensor<4x16xbf16> -> tensor<8x4xf32>
// CHECK: aim.matmul %{{.*}}, %{{.*}}, transpose_lhs = false, transpose_rhs = true : tensor<8x16xf64>, tensor<4x16xf64> -> tensor<8x4xf64>
func.func @loss_and_grads(%x: tensor<8x16xbf16>, %w: tensor<4x16xbf16>, %a: tensor<8x16xf64>, %b: tensor<4x16xf64>)
    -> (tensor<8x4xf32>, tensor<8x4xf64>) {
  %y = aim.linear %x, %w : tensor<8x16xbf16>, tensor<4x16xbf16> -> tensor<8x4xf32>
  %z = aim.matmul %a, %b, transpose_lhs = false, transpose_rhs = true : tensor<8x16xf64>, tensor<4x16xf64> -> tensor<8x4xf64>
  return %y, %z : tensor<8x4xf32>, tensor<8x4xf64>
}
