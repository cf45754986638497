// RUN: aim-opt %s --split-input-file --verify-diagnostics --aim-shard="dp=2 tp=2"
// RUN: not aim-opt %s --split-input-file --aim-shard="dp=0" 2>&1 | FileCheck %s --check-prefix=OPTIONS

// OPTIONS: aim-shard: dp and tp are positive rank counts and zero is 0 or 1 (got dp = 0, tp = 1, zero = 0)

// A layer norm needs its whole rows: a tensor split over tp is not gathered.
func.func @forward(%x: tensor<4x3x8xf32> {aim.input = "x"},
                   %w: tensor<8x8xf32> {aim.param = "w", aim.sharding = {tp = 0}},
                   %nw: tensor<8xf32> {aim.param = "nw"}, %nb: tensor<8xf32> {aim.param = "nb"},
                   %t: tensor<4x3x8xf32> {aim.input = "target"},
                   %K: tensor<4xi32> {aim.input = "prefix"}) -> tensor<f32> {
  %h = aim.linear %x, %w : tensor<4x3x8xf32>, tensor<8x8xf32> -> tensor<4x3x8xf32>
  // expected-error @+1 {{needs operand 0 whole, but it is split over tp (dimension 2)}}
  %n = aim.layer_norm %h, %nw, %nb, epsilon = 1.0e-6 : tensor<4x3x8xf32>, tensor<8xf32>, tensor<8xf32> -> tensor<4x3x8xf32>
  %l = aim.normalized_pixel_loss %n, %t, prefix %K, epsilon = 1.0e-6 : tensor<4x3x8xf32>, tensor<4x3x8xf32>, tensor<4xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The batch must split into the dp ranks.
// expected-error @+1 {{the batch of input 0 ('tensor<3x3x8xf32>') does not split into 2 data-parallel ranks}}
func.func @forward(%x: tensor<3x3x8xf32> {aim.input = "x"},
                   %t: tensor<3x3x8xf32> {aim.input = "target"},
                   %K: tensor<3xi32> {aim.input = "prefix"}) -> tensor<f32> {
  %l = aim.normalized_pixel_loss %x, %t, prefix %K, epsilon = 1.0e-6 : tensor<3x3x8xf32>, tensor<3x3x8xf32>, tensor<3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A parameter's sharding names a tp dimension; dp belongs to the optimiser.
// expected-error @+1 {{parameter "w": aim.sharding {dp = 0 : i64} is not {tp = DIM} or {tp = DIM, tp_groups = G}}}
func.func @forward(%x: tensor<4x3x8xf32> {aim.input = "x"},
                   %w: tensor<8x8xf32> {aim.param = "w", aim.sharding = {dp = 0}},
                   %t: tensor<4x3x8xf32> {aim.input = "target"},
                   %K: tensor<4xi32> {aim.input = "prefix"}) -> tensor<f32> {
  %h = aim.linear %x, %w : tensor<4x3x8xf32>, tensor<8x8xf32> -> tensor<4x3x8xf32>
  %l = aim.normalized_pixel_loss %h, %t, prefix %K, epsilon = 1.0e-6 : tensor<4x3x8xf32>, tensor<4x3x8xf32>, tensor<4xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// tp = 2 cannot cut 3 rows in halves.
// expected-error @+1 {{parameter "w" ('tensor<3x8xf32>') cannot split dimension 0 into 1 block(s) of 2 tp ranks}}
func.func @forward(%x: tensor<4x3x8xf32> {aim.input = "x"},
                   %w: tensor<3x8xf32> {aim.param = "w", aim.sharding = {tp = 0}},
                   %t: tensor<4x3x3xf32> {aim.input = "target"},
                   %K: tensor<4xi32> {aim.input = "prefix"}) -> tensor<f32> {
  %h = aim.linear %x, %w : tensor<4x3x8xf32>, tensor<3x8xf32> -> tensor<4x3x3xf32>
  %l = aim.normalized_pixel_loss %h, %t, prefix %K, epsilon = 1.0e-6 : tensor<4x3x3xf32>, tensor<4x3x3xf32>, tensor<4xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A row-parallel linear needs its input split the same way.
func.func @forward(%x: tensor<4x3x8xf32> {aim.input = "x"},
                   %w: tensor<8x8xf32> {aim.param = "w", aim.sharding = {tp = 1}},
                   %t: tensor<4x3x8xf32> {aim.input = "target"},
                   %K: tensor<4xi32> {aim.input = "prefix"}) -> tensor<f32> {
  // expected-error @+1 {{has a row-parallel weight, so its input must be split over tp on the last dimension the same way}}
  %h = aim.linear %x, %w : tensor<4x3x8xf32>, tensor<8x8xf32> -> tensor<4x3x8xf32>
  %l = aim.normalized_pixel_loss %h, %t, prefix %K, epsilon = 1.0e-6 : tensor<4x3x8xf32>, tensor<4x3x8xf32>, tensor<4xi32> -> tensor<f32>
  return %l : tensor<f32>
}
