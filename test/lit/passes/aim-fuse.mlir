// RUN: aim-opt %s --split-input-file --aim-fuse | FileCheck %s
// RUN: aim-opt %s --split-input-file --aim-fuse=target=l4 | FileCheck %s --check-prefix=L4
// RUN: not aim-opt %s --split-input-file --aim-fuse=target=tpu 2>&1 | FileCheck %s --check-prefix=BADTARGET

// A GEMM takes its epilogue: bias is inside aim.linear, then GELU and the
// residual add.
// CHECK-LABEL: func.func @loss_and_grads
// CHECK: %[[K1:.+]] = aim.fusion "gemm"
// CHECK-NEXT: ^bb0(
// CHECK-NEXT: aim.linear
// CHECK-NEXT: aim.gelu
// CHECK-NEXT: aim.add
// CHECK-NEXT: aim.yield
// CHECK: return %[[K1]]
// L4-LABEL: func.func @loss_and_grads
func.func @loss_and_grads(%x: tensor<64x32xf32>, %w: tensor<32x32xf32>, %b: tensor<32xf32>,
                          %r: tensor<64x32xf32>) -> tensor<64x32xf32> {
  %0 = aim.linear %x, %w, %b : tensor<64x32xf32>, tensor<32x32xf32>, tensor<32xf32> -> tensor<64x32xf32>
  %1 = aim.gelu %0, approximation = erf : tensor<64x32xf32> -> tensor<64x32xf32>
  %2 = aim.add %1, %r : tensor<64x32xf32>, tensor<64x32xf32> -> tensor<64x32xf32>
  return %2 : tensor<64x32xf32>
}

// -----

// The layer norm takes the residual add that feeds it and writes both the
// sum (the residual stream still needs it) and the norm.
// CHECK-LABEL: func.func @loss_and_grads
// CHECK: %[[K:.+]]:2 = aim.fusion "layer_norm"
// CHECK-NEXT: ^bb0(
// CHECK-NEXT: aim.add
// CHECK-NEXT: aim.layer_norm
// CHECK-NEXT: aim.yield
// CHECK: return %[[K]]#1, %[[K]]#0
// L4-LABEL: func.func @loss_and_grads
func.func @loss_and_grads(%x: tensor<64x32xf32>, %r: tensor<64x32xf32>, %g: tensor<32xf32>,
                          %beta: tensor<32xf32>) -> (tensor<64x32xf32>, tensor<64x32xf32>) {
  %0 = aim.add %x, %r : tensor<64x32xf32>, tensor<64x32xf32> -> tensor<64x32xf32>
  %1 = aim.layer_norm %0, %g, %beta, epsilon = 1.0e-6 : tensor<64x32xf32>, tensor<32xf32>, tensor<32xf32> -> tensor<64x32xf32>
  return %1, %0 : tensor<64x32xf32>, tensor<64x32xf32>
}

// -----

// A layer norm feeding only a wide GEMM: fusing it as the GEMM's prologue
// saves a write and a read of 8192x512 values but recomputes the norm for
// each of the 32 column tiles. On h100-sxm (3.35 TB/s, 67 TFLOP/s FP32) the
// recomputation costs more than the traffic: two kernels. On l4 (0.3 TB/s,
// 30 TFLOP/s) the traffic costs more: one kernel.
// CHECK-LABEL: func.func @loss_and_grads
// CHECK-NOT: aim.fusion
// CHECK: aim.layer_norm
// CHECK-NOT: aim.fusion
// CHECK: aim.linear
// L4-LABEL: func.func @loss_and_grads
// L4: aim.fusion "gemm"
// L4-NEXT: ^bb0(
// L4-NEXT: aim.layer_norm
// L4-NEXT: aim.linear
func.func @loss_and_grads(%x: tensor<8192x512xf32>, %g: tensor<512xf32>, %b: tensor<512xf32>,
                          %w: tensor<4096x512xf32>) -> tensor<8192x4096xf32> {
  %0 = aim.layer_norm %x, %g, %b, epsilon = 1.0e-6 : tensor<8192x512xf32>, tensor<512xf32>, tensor<512xf32> -> tensor<8192x512xf32>
  %1 = aim.linear %0, %w : tensor<8192x512xf32>, tensor<4096x512xf32> -> tensor<8192x4096xf32>
  return %1 : tensor<8192x4096xf32>
}

// -----

// A narrow GEMM (4 column tiles): the recomputation is cheap, both fuse.
// CHECK-LABEL: func.func @loss_and_grads
// CHECK: aim.fusion "gemm"
// CHECK-NEXT: ^bb0(
// CHECK-NEXT: aim.layer_norm
// L4-LABEL: func.func @loss_and_grads
// L4: aim.fusion "gemm"
func.func @loss_and_grads(%x: tensor<8192x512xf32>, %g: tensor<512xf32>, %b: tensor<512xf32>,
                          %w: tensor<512x512xf32>) -> tensor<8192x512xf32> {
  %0 = aim.layer_norm %x, %g, %b, epsilon = 1.0e-6 : tensor<8192x512xf32>, tensor<512xf32>, tensor<512xf32> -> tensor<8192x512xf32>
  %1 = aim.linear %0, %w : tensor<8192x512xf32>, tensor<512x512xf32> -> tensor<8192x512xf32>
  return %1 : tensor<8192x512xf32>
}

// -----

// Every AdamW update in one multi-tensor kernel; the norm and the clipping
// factor stay apart (the updates need the finished norm).
// CHECK-LABEL: func.func @train_step
// CHECK: aim.global_norm
// CHECK: aim.clip_coefficient
// CHECK: %{{.+}}:6 = aim.fusion "optimizer"
// CHECK-COUNT-2: aim.adamw
// CHECK-NOT: aim.adamw
func.func @train_step(%p: tensor<4x3xf32>, %q: tensor<3xf32>, %lr: tensor<f32>, %s: tensor<i64>)
    -> (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
  %n = aim.global_norm %p, %q : tensor<4x3xf32>, tensor<3xf32> -> tensor<f32>
  %c = aim.clip_coefficient %n, max_norm = 1.0, epsilon = 1.0e-6 : tensor<f32> -> tensor<f32>
  %p1, %m1, %v1 = aim.adamw %p, %p, %p, %p, lr %lr, step %s, clip %c, beta1 = 0.9, beta2 = 0.95, epsilon = 1.0e-8, weight_decay = 0.05 : tensor<4x3xf32>, tensor<f32>, tensor<i64>, tensor<f32>
  %q1, %n1, %w1 = aim.adamw %q, %q, %q, %q, lr %lr, step %s, clip %c, beta1 = 0.9, beta2 = 0.95, epsilon = 1.0e-8, weight_decay = 0.0 : tensor<3xf32>, tensor<f32>, tensor<i64>, tensor<f32>
  return %p1, %m1, %v1, %q1, %n1, %w1 : tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
}

// BADTARGET: aim-fuse: target description 'tpu' is neither a built-in one (h100-sxm, l4) nor a readable file
