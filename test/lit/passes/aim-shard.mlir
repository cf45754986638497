// RUN: aim-opt %s --aim-shard="dp=2 tp=2" | FileCheck %s
// RUN: aim-opt %s --aim-shard="dp=2 tp=2" --aim-autodiff | FileCheck %s --check-prefix=GRADS
// RUN: aim-opt %s --aim-shard="dp=2 tp=2 zero=1" --aim-autodiff --aim-build-train-step | FileCheck %s --check-prefix=ZERO
// RUN: aim-opt %s --aim-shard="dp=1 tp=1" | FileCheck %s --check-prefix=ONE
// RUN: not aim-opt %s --aim-shard="dp=2" --aim-shard="dp=2" 2>&1 | FileCheck %s --check-prefix=TWICE

// A residual MLP with Megatron's splits given on its weights: fc1
// column-parallel, fc2 row-parallel. dp = 2 splits the batch of 4.

// CHECK: shard.grid @mesh(shape = 2x2)
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x3x8xf32> {aim.input = "x", aim.sharding = {dp = 0 : i64}}
// CHECK-SAME: %[[W1:[^:]+]]: tensor<8x8xf32> {aim.param = "fc1.weight", aim.sharding = {tp = 0 : i64}}
// CHECK-SAME: %[[W2:[^:]+]]: tensor<8x8xf32> {aim.param = "fc2.weight", aim.sharding = {tp = 1 : i64}}
// CHECK-SAME: %[[T:[^:]+]]: tensor<2x3x8xf32> {aim.input = "target", aim.sharding = {dp = 0 : i64}}
// CHECK-SAME: %[[K:[^:]+]]: tensor<2xi32> {aim.input = "prefix", aim.sharding = {dp = 0 : i64}}
// CHECK: %[[NORM:.+]] = aim.layer_norm %[[X]]
// CHECK: %[[IN:.+]] = aim.enter_partial %[[NORM]] on @mesh grid_axes = [1] : tensor<2x3x8xf32>
// CHECK: %[[H:.+]] = aim.linear %[[IN]], %[[W1]] : tensor<2x3x8xf32>, tensor<8x8xf32> -> tensor<2x3x8xf32>
// CHECK: %[[G:.+]] = aim.gelu %[[H]]
// CHECK: %[[P:.+]] = aim.linear %[[G]], %[[W2]] : tensor<2x3x8xf32>, tensor<8x8xf32> -> tensor<2x3x8xf32>
// The partial sums of the row-parallel linear, completed before the residual.
// CHECK: %[[Y:.+]] = shard.all_reduce %[[P]] on @mesh grid_axes = [1] : tensor<2x3x8xf32> -> tensor<2x3x8xf32>
// CHECK: %[[R:.+]] = aim.add %[[X]], %[[Y]]
// The loss of the whole batch: each dp rank's mean weighted by its targets.
// CHECK: %[[L:.+]] = aim.normalized_pixel_loss %[[R]], %[[T]], prefix %[[K]]
// CHECK: %[[N:.+]] = aim.target_count %[[K]], patches = 3 {aim.scope = "loss"} : tensor<2xi32> -> tensor<f32>
// CHECK: %[[TOTAL:.+]] = shard.all_reduce %[[N]] on @mesh grid_axes = [0]
// CHECK: %[[SHARE:.+]] = aim.reweight %[[L]], %[[N]], %[[TOTAL]]
// CHECK: %[[GLOBAL:.+]] = shard.all_reduce %[[SHARE]] on @mesh grid_axes = [0]
// CHECK: return %[[GLOBAL]]

// The cotangent of the column-parallel linear's input is summed over tp.
// GRADS-LABEL: func.func @loss_and_grads(
// GRADS: %[[SEED:.+]] = aim.reweight %cst
// GRADS: aim.normalized_pixel_loss_grad %[[SEED]]
// GRADS: %[[DSUM:.+]] = shard.all_reduce %{{.*}} on @mesh grid_axes = [1] {aim.scope = "grad"} : tensor<2x3x8xf32> -> tensor<2x3x8xf32>
// GRADS: aim.layer_norm_grad %[[DSUM]]

// ZeRO-1: each dp rank updates its half of every parameter.
// ZERO-LABEL: func.func @train_step(
// ZERO-SAME: tensor<8x8xf32> {aim.param = "fc1.weight", aim.sharding = {tp = 0 : i64}}
// ZERO-SAME: tensor<4x8xf32> {aim.sharding = {dp = 0 : i64, tp = 0 : i64}, aim.state = "fc1.weight.exp_avg"}
// ZERO: shard.reduce_scatter %{{.*}}#1 on @mesh grid_axes = [0] scatter_axis = 0 {aim.gradient_reduction} : tensor<8xf32> -> tensor<4xf32>
// ZERO: %[[G1:.+]] = shard.reduce_scatter %{{.*}}#3 on @mesh grid_axes = [0] scatter_axis = 0 {aim.gradient_reduction} : tensor<8x8xf32> -> tensor<4x8xf32>
// ZERO: %[[P1:.+]] = shard.all_slice %{{.*}} on @mesh grid_axes = [0] slice_axis = 0 : tensor<8x8xf32> -> tensor<4x8xf32>
// The squared norm: the layer norm's halves summed over dp, the weights'
// quarters over dp and tp.
// ZERO: %[[S0:.+]] = aim.sum_squares {{.*}} : tensor<4xf32>, tensor<4xf32> -> tensor<f32>
// ZERO: %[[R0:.+]] = shard.all_reduce %[[S0]] on @mesh grid_axes = [0] :
// ZERO: %[[S1:.+]] = aim.sum_squares %[[G1]], %{{.*}} : tensor<4x8xf32>, tensor<4x8xf32> -> tensor<f32>
// ZERO: %[[R1:.+]] = shard.all_reduce %[[S1]] on @mesh grid_axes = [0, 1]
// ZERO: %[[SUM:.+]] = aim.add %[[R0]], %[[R1]]
// ZERO: %[[NORM:.+]] = aim.sqrt %[[SUM]]
// ZERO: %[[NEW:.+]], %{{.*}}, %{{.*}} = aim.adamw %[[P1]], %[[G1]]
// ZERO: shard.all_gather %[[NEW]] on @mesh grid_axes = [0] gather_axis = 0 : tensor<4x8xf32> -> tensor<8x8xf32>

// TWICE: error: the module already has @mesh: it is sharded already

// A grid of one rank keeps the dp sums of the loss, over itself (the
// communication path on one device); nothing splits, nothing sums over tp.
// ONE: shard.grid @mesh(shape = 1x1)
// ONE: func.func @forward(%{{.*}}: tensor<4x3x8xf32>
// ONE-NOT: grid_axes = [1]
// ONE: shard.all_reduce %{{.*}} on @mesh grid_axes = [0] {aim.scope = "loss"}
// ONE: shard.all_reduce %{{.*}} on @mesh grid_axes = [0] {aim.scope = "loss"}
// ONE-NOT: grid_axes = [1]

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
