// A prediction of zeros: the loss is then mean_j t'^2 over the targets, which
// is (P - 1) / P * var / (var + eps) per patch = 0.75 (to 1e-6) for P = 4.
func.func @forward(%images: tensor<1x1x2x4xf32> {aim.input = "images"},
                   %prefix: tensor<1xi32> {aim.input = "prefix"},
                   %w: tensor<4x4xf32> {aim.param = "w"}) -> tensor<f32> {
  %t = aim.patchify %images, patch_size = 2, order = channel_last : tensor<1x1x2x4xf32> -> tensor<1x2x4xf32>
  %p = aim.linear %t, %w : tensor<1x2x4xf32>, tensor<4x4xf32> -> tensor<1x2x4xf32>
  %l = aim.normalized_pixel_loss %p, %t, prefix %prefix, epsilon = 1.0e-6 : tensor<1x2x4xf32>, tensor<1x2x4xf32>, tensor<1xi32> -> tensor<f32>
  return %l : tensor<f32>
}

func.func @other(%x: tensor<2xf32>) -> tensor<2xf32> {
  return %x : tensor<2xf32>
}
