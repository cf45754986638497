// RUN: aim-opt %s --aim-plan-memory | FileCheck %s

// %a dies where %d is born later: %d takes %a's bytes. Views get no storage
// (-1), returned values are persistent (-1), and the arena is 3 slots of
// 256 bytes, not 4.
// CHECK-LABEL: func.func @loss_and_grads
// CHECK-SAME: aim.arena_bytes = 768
// CHECK: aim.add {{.*}}aim.arena_offsets = array<i64: [[A:[0-9]+]]>
// CHECK: aim.add {{.*}}aim.arena_offsets = array<i64: [[B:[0-9]+]]>
// CHECK: aim.add {{.*}}aim.arena_offsets = array<i64: [[C:[0-9]+]]>
// CHECK: aim.reshape {{.*}}aim.arena_offsets = array<i64: -1>
// CHECK: aim.add {{.*}}aim.arena_offsets = array<i64: [[A]]>
// CHECK: aim.add {{.*}}aim.arena_offsets = array<i64: -1>
func.func @loss_and_grads(%x: tensor<16xf32>) -> tensor<16xf32> {
  %a = aim.add %x, %x : tensor<16xf32>, tensor<16xf32> -> tensor<16xf32>
  %b = aim.add %x, %x : tensor<16xf32>, tensor<16xf32> -> tensor<16xf32>
  %c = aim.add %a, %b : tensor<16xf32>, tensor<16xf32> -> tensor<16xf32>
  %v = aim.reshape %c : tensor<16xf32> -> tensor<16xf32>
  %d = aim.add %v, %v : tensor<16xf32>, tensor<16xf32> -> tensor<16xf32>
  %e = aim.add %d, %b : tensor<16xf32>, tensor<16xf32> -> tensor<16xf32>
  return %e : tensor<16xf32>
}

// Functions other than the step's entry points are left alone.
// CHECK-LABEL: func.func @forward
// CHECK-NOT: aim.arena
func.func @forward(%x: tensor<16xf32>) -> tensor<16xf32> {
  %a = aim.add %x, %x : tensor<16xf32>, tensor<16xf32> -> tensor<16xf32>
  return %a : tensor<16xf32>
}
