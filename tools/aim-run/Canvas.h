//===- Canvas.h - lines, text and images on an RGB picture ----------------===//
//
// Just enough drawing for aim-run's PNGs (loss curves, prediction grids):
// lines, rectangles, upscaled images and text in a built-in 5x7 font
// (digits, capitals -- lower case is drawn as capitals -- and . - + : ( ) /
// = , and space).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_TOOLS_AIMRUN_CANVAS_H
#define AIMC_TOOLS_AIMRUN_CANVAS_H

#include "common/Image.h"

#include <string>

namespace aim {

struct Colour {
  uint8_t r = 0, g = 0, b = 0;
};

class Canvas {
public:
  Canvas(int64_t height, int64_t width, Colour background);

  void pixel(int64_t x, int64_t y, Colour c);
  void line(double x0, double y0, double x1, double y1, Colour c,
            int thickness = 1);
  void fillRect(int64_t x, int64_t y, int64_t w, int64_t h, Colour c);
  void strokeRect(int64_t x, int64_t y, int64_t w, int64_t h, Colour c);
  /// Text with its top-left corner at (x, y), each font pixel `scale` wide.
  void text(int64_t x, int64_t y, const std::string &s, Colour c,
            int scale = 2);
  static int64_t textWidth(const std::string &s, int scale = 2);
  /// `image` (gray or RGB) with its top-left corner at (x, y), each pixel
  /// drawn as a `scale` x `scale` block.
  void blit(const Image &image, int64_t x, int64_t y, int scale);

  const Image &image() const { return picture; }

private:
  Image picture;
};

} // namespace aim

#endif // AIMC_TOOLS_AIMRUN_CANVAS_H
