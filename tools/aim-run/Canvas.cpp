//===- Canvas.cpp - lines, text and images on an RGB picture --------------===//
#include "tools/aim-run/Canvas.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>

namespace aim {

namespace {
/// One glyph: seven rows, the five low bits of each, leftmost column first.
struct Glyph {
  char c;
  uint8_t rows[7];
};

// clang-format off
constexpr Glyph kFont[] = {
  {'0', {0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110}},
  {'1', {0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
  {'2', {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111}},
  {'3', {0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110}},
  {'4', {0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010}},
  {'5', {0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110}},
  {'6', {0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110}},
  {'7', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000}},
  {'8', {0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110}},
  {'9', {0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100}},
  {'.', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100}},
  {'-', {0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000}},
  {'+', {0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000}},
  {':', {0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000}},
  {'(', {0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010}},
  {')', {0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000}},
  {'/', {0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000}},
  {'=', {0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000}},
  {',', {0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000}},
  {'A', {0b01110, 0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001}},
  {'B', {0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110}},
  {'C', {0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110}},
  {'D', {0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100}},
  {'E', {0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111}},
  {'F', {0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000}},
  {'G', {0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111}},
  {'H', {0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001}},
  {'I', {0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
  {'J', {0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100}},
  {'K', {0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001}},
  {'L', {0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111}},
  {'M', {0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001}},
  {'N', {0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001}},
  {'O', {0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110}},
  {'P', {0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000}},
  {'Q', {0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101}},
  {'R', {0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001}},
  {'S', {0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110}},
  {'T', {0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100}},
  {'U', {0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110}},
  {'V', {0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100}},
  {'W', {0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010}},
  {'X', {0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001}},
  {'Y', {0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100}},
  {'Z', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111}},
};
// clang-format on

const Glyph *glyphOf(char c) {
  char upper = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const Glyph &g : kFont)
    if (g.c == upper)
      return &g;
  return nullptr; // drawn as a space
}
} // namespace

Canvas::Canvas(int64_t height, int64_t width, Colour background) {
  picture = Image::blank(height, width, 3);
  fillRect(0, 0, width, height, background);
}

void Canvas::pixel(int64_t x, int64_t y, Colour c) {
  if (x < 0 || y < 0 || x >= picture.width || y >= picture.height)
    return;
  picture.at(y, x, 0) = c.r;
  picture.at(y, x, 1) = c.g;
  picture.at(y, x, 2) = c.b;
}

void Canvas::line(double x0, double y0, double x1, double y1, Colour c,
                  int thickness) {
  double length = std::max(std::fabs(x1 - x0), std::fabs(y1 - y0));
  int64_t steps = std::max<int64_t>(1, std::lround(length));
  for (int64_t i = 0; i <= steps; ++i) {
    double t = static_cast<double>(i) / steps;
    int64_t x = std::lround(x0 + t * (x1 - x0));
    int64_t y = std::lround(y0 + t * (y1 - y0));
    for (int dy = 0; dy < thickness; ++dy)
      for (int dx = 0; dx < thickness; ++dx)
        pixel(x + dx - thickness / 2, y + dy - thickness / 2, c);
  }
}

void Canvas::fillRect(int64_t x, int64_t y, int64_t w, int64_t h, Colour c) {
  for (int64_t j = y; j < y + h; ++j)
    for (int64_t i = x; i < x + w; ++i)
      pixel(i, j, c);
}

void Canvas::strokeRect(int64_t x, int64_t y, int64_t w, int64_t h,
                        Colour c) {
  line(x, y, x + w - 1, y, c);
  line(x, y + h - 1, x + w - 1, y + h - 1, c);
  line(x, y, x, y + h - 1, c);
  line(x + w - 1, y, x + w - 1, y + h - 1, c);
}

int64_t Canvas::textWidth(const std::string &s, int scale) {
  return static_cast<int64_t>(s.size()) * 6 * scale;
}

void Canvas::text(int64_t x, int64_t y, const std::string &s, Colour c,
                  int scale) {
  for (size_t k = 0; k < s.size(); ++k) {
    const Glyph *g = glyphOf(s[k]);
    if (!g)
      continue;
    int64_t left = x + static_cast<int64_t>(k) * 6 * scale;
    for (int row = 0; row < 7; ++row)
      for (int col = 0; col < 5; ++col)
        if (g->rows[row] & (1 << (4 - col)))
          fillRect(left + col * scale, y + row * scale, scale, scale, c);
  }
}

void Canvas::blit(const Image &image, int64_t x, int64_t y, int scale) {
  for (int64_t j = 0; j < image.height; ++j)
    for (int64_t i = 0; i < image.width; ++i) {
      Colour c;
      c.r = image.at(j, i, 0);
      c.g = image.channels == 3 ? image.at(j, i, 1) : c.r;
      c.b = image.channels == 3 ? image.at(j, i, 2) : c.r;
      fillRect(x + i * scale, y + j * scale, scale, scale, c);
    }
}

} // namespace aim
