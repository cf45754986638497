// RUN: aim-opt %s --aim-shard="dp=2 tp=2" --aim-autodiff --aim-build-train-step --aim-schedule="bucket-bytes=300" | FileCheck %s
// RUN: aim-opt %s --aim-shard="dp=2" --aim-autodiff --aim-build-train-step --aim-schedule="bucket-bytes=0" | FileCheck %s --check-prefix=OFF
// RUN: aim-opt %s --aim-shard="tp=2" --aim-autodiff --aim-build-train-step --aim-schedule | FileCheck %s --check-prefix=TP

// aim-schedule on the residual MLP of aim-shard.mlir, dp=2: the backward is
// inlined into @train_step and each gradient's dp sum starts as soon as the
// gradient is ready, in buckets of at most 300 bytes, in the order they are
// ready: fc2's 256 bytes; fc1's 256 and the norm weight's 32; the norm bias.

// CHECK-LABEL: func.func @train_step(
// CHECK-NOT: call @loss_and_grads
// The last layer's weight gradient is ready first: its sum starts before the
// backward goes on.
// CHECK: %[[G2:.+]] = aim.matmul {{.*}} transpose_lhs = true{{.*}} -> tensor<8x8xf32>
// CHECK-NEXT: %[[R2:.+]] = shard.all_reduce %[[G2]] on @mesh grid_axes = [0] {aim.async, aim.bucket = 0 : i64, aim.gradient_reduction}
// CHECK-NEXT: aim.gelu_grad
// CHECK: %[[G1:.+]] = aim.matmul {{.*}} transpose_lhs = true{{.*}} -> tensor<8x8xf32>
// The layer norm's gradients come after the tp sum of its input's gradient.
// CHECK: shard.all_reduce {{.*}} grid_axes = [1] {aim.scope = "grad"}
// CHECK: %{{.*}}, %[[W:.+]], %[[B:.+]] = aim.layer_norm_grad
// CHECK-NEXT: %[[R1:.+]] = shard.all_reduce %[[G1]] {{.*}} {aim.async, aim.bucket = 1 : i64
// CHECK-NEXT: %[[RW:.+]] = shard.all_reduce %[[W]] {{.*}} {aim.async, aim.bucket = 1 : i64
// CHECK-NEXT: %[[RB:.+]] = shard.all_reduce %[[B]] {{.*}} {aim.async, aim.bucket = 2 : i64
// One wait, before the first use: the clipping norm.
// CHECK-NEXT: %[[WAITED:.+]]:4 = aim.wait_collectives %[[R2]], %[[R1]], %[[RW]], %[[RB]]
// CHECK-NEXT: aim.sum_squares %[[WAITED]]#2, %[[WAITED]]#3
// @apply_gradients (gradient accumulation) stays synchronous.
// CHECK-LABEL: func.func @apply_gradients(
// CHECK-NOT: aim.async
// CHECK-NOT: aim.wait_collectives
// CHECK: return

// bucket-bytes=0: the sums after the backward, as aim-build-train-step made them.
// OFF: call @loss_and_grads
// OFF-NOT: aim.async
// OFF-NOT: aim.wait_collectives

// No dp axis: nothing to start ahead, @train_step unchanged.
// TP: call @loss_and_grads
// TP-NOT: aim.wait_collectives

module {
func.func @forward(%x: tensor<4x3x8xf32> {aim.input = "x"},
                   %nw: tensor<8xf32> {aim.param = "norm.weight"},
                   %nb: tensor<8xf32> {aim.param = "norm.bias"},
                   %w1: tensor<16x8xf32> {aim.param = "fc1.weight", aim.sharding = {tp = 0}},
                   %w2: tensor<8x16xf32> {aim.param = "fc2.weight", aim.sharding = {tp = 1}},
                   %t: tensor<4x3x8xf32> {aim.input = "target"},
                   %K: tensor<4xi32> {aim.input = "prefix"}) -> tensor<f32> {
  %n = aim.layer_norm %x, %nw, %nb, epsilon = 1.0e-6 : tensor<4x3x8xf32>, tensor<8xf32>, tensor<8xf32> -> tensor<4x3x8xf32>
  %h = aim.linear %n, %w1 : tensor<4x3x8xf32>, tensor<16x8xf32> -> tensor<4x3x16xf32>
  %g = aim.gelu %h, approximation = erf : tensor<4x3x16xf32> -> tensor<4x3x16xf32>
  %y = aim.linear %g, %w2 : tensor<4x3x16xf32>, tensor<8x16xf32> -> tensor<4x3x8xf32>
  %r = aim.add %x, %y : tensor<4x3x8xf32>, tensor<4x3x8xf32> -> tensor<4x3x8xf32>
  %l = aim.normalized_pixel_loss %r, %t, prefix %K, epsilon = 1.0e-6 : tensor<4x3x8xf32>, tensor<4x3x8xf32>, tensor<4xi32> -> tensor<f32>
  return %l : tensor<f32>
}
}
