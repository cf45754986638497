// RUN: aim-opt %s --aim-shard="tp=2" | FileCheck %s
// RUN: sed 's/, aim.sharding = {}//' %s | aim-opt --aim-shard="tp=2" | FileCheck %s --check-prefix=DEFAULT

// A researcher's change: `aim.sharding = {}` keeps a trunk weight whole on
// every tp rank instead of Megatron's split; the values it feeds follow.
// CHECK: func.func @forward(
// CHECK-SAME: tensor<16x8xf32> {aim.param = "trunk.blocks.0.mlp.fc1.weight"}
// CHECK-SAME: tensor<8x16xf32> {aim.param = "trunk.blocks.0.mlp.fc2.weight"}
// CHECK-NOT: enter_partial
// CHECK-NOT: shard.all_reduce
// CHECK: return

// Without it, the default split: fc1 column-, fc2 row-parallel.
// DEFAULT: tensor<8x8xf32> {aim.param = "trunk.blocks.0.mlp.fc1.weight", aim.sharding = {tp = 0 : i64}}
// DEFAULT-SAME: tensor<8x8xf32> {aim.param = "trunk.blocks.0.mlp.fc2.weight", aim.sharding = {tp = 1 : i64}}
// DEFAULT: aim.enter_partial
// DEFAULT: shard.all_reduce

module {
func.func @forward(%x: tensor<4x3x8xf32> {aim.input = "x"},
                   %w1: tensor<16x8xf32> {aim.param = "trunk.blocks.0.mlp.fc1.weight", aim.sharding = {}},
                   %w2: tensor<8x16xf32> {aim.param = "trunk.blocks.0.mlp.fc2.weight", aim.sharding = {}},
                   %t: tensor<4x3x8xf32> {aim.input = "target"},
                   %K: tensor<4xi32> {aim.input = "prefix"}) -> tensor<f32> {
  %h = aim.linear %x, %w1 : tensor<4x3x8xf32>, tensor<16x8xf32> -> tensor<4x3x16xf32>
  %y = aim.linear %h, %w2 : tensor<4x3x16xf32>, tensor<8x16xf32> -> tensor<4x3x8xf32>
  %l = aim.normalized_pixel_loss %y, %t, prefix %K, epsilon = 1.0e-6 : tensor<4x3x8xf32>, tensor<4x3x8xf32>, tensor<4xi32> -> tensor<f32>
  return %l : tensor<f32>
}
}
