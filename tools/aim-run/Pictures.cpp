//===- Pictures.cpp - the PNGs of a training run --------------------------===//
#include "tools/aim-run/Pictures.h"

#include "common/FileIO.h"
#include "common/ImageCodec.h"
#include "common/ImageTransform.h"
#include "common/MiniJson.h"
#include "tools/aim-run/Canvas.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace aim::rt {

namespace {

constexpr Colour kWhite{255, 255, 255}, kInk{40, 40, 40}, kGrid{225, 225, 225},
    kTrainRaw{170, 200, 235}, kTrain{30, 90, 180}, kValidation{220, 110, 20};

/// About five round tick values covering [low, high].
std::vector<double> ticks(double low, double high) {
  double raw = (high - low) / 5.0;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> out;
  for (double v = std::ceil(low / step) * step; v <= high + 1e-9 * step;
       v += step)
    out.push_back(std::fabs(v) < 1e-12 ? 0.0 : v);
  return out;
}

std::string label(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

struct Series {
  std::vector<double> steps, values;
};

} // namespace

Status writeLossCurves(const std::string &runDir, const std::string &model) {
  StatusOr<std::string> text = readWholeFile(runDir + "/metrics.jsonl");
  if (!text)
    return text.status();
  Series train, validation;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    StatusOr<JsonValue> record = parseJson(line);
    if (!record)
      continue; // a line cut short by a killed run
    const JsonValue *step = record->find("step");
    if (!step)
      continue;
    if (const JsonValue *loss = record->find("loss")) {
      train.steps.push_back(step->number);
      train.values.push_back(loss->number);
    }
    if (const JsonValue *loss = record->find("val_loss")) {
      validation.steps.push_back(step->number);
      validation.values.push_back(loss->number);
    }
  }
  if (train.steps.empty())
    return Status::error(runDir + "/metrics.jsonl holds no training steps");

  const int64_t width = 900, height = 560, left = 90, right = 30, top = 60,
                bottom = 70;
  Canvas canvas(height, width, kWhite);
  double maxStep = std::max(1.0, train.steps.back());
  for (double s : validation.steps)
    maxStep = std::max(maxStep, s);
  double maxLoss = 0.0;
  for (const Series *s : {&train, &validation})
    for (double v : s->values)
      if (std::isfinite(v))
        maxLoss = std::max(maxLoss, v);
  maxLoss = maxLoss > 0 ? maxLoss * 1.05 : 1.0;
  const double plotW = width - left - right, plotH = height - top - bottom;
  auto X = [&](double step) { return left + step / maxStep * plotW; };
  auto Y = [&](double loss) { return top + plotH - loss / maxLoss * plotH; };

  for (double v : ticks(0, maxLoss)) {
    canvas.line(left, Y(v), left + plotW, Y(v), kGrid);
    std::string t = label(v);
    canvas.text(left - 10 - Canvas::textWidth(t), std::lround(Y(v)) - 7, t,
                kInk);
  }
  for (double s : ticks(0, maxStep)) {
    canvas.line(X(s), top, X(s), top + plotH, kGrid);
    std::string t = label(s);
    canvas.text(std::lround(X(s)) - Canvas::textWidth(t) / 2,
                top + plotH + 10, t, kInk);
  }
  canvas.strokeRect(left, top, static_cast<int64_t>(plotW) + 1,
                    static_cast<int64_t>(plotH) + 1, kInk);

  for (size_t i = 1; i < train.steps.size(); ++i)
    canvas.line(X(train.steps[i - 1]), Y(train.values[i - 1]),
                X(train.steps[i]), Y(train.values[i]), kTrainRaw);
  // Moving average over the last 20 steps: the trend through the noise of
  // single batches.
  std::vector<double> smooth;
  double sum = 0.0;
  for (size_t i = 0; i < train.values.size(); ++i) {
    sum += train.values[i];
    if (i >= 20)
      sum -= train.values[i - 20];
    smooth.push_back(sum / std::min<double>(i + 1, 20));
  }
  for (size_t i = 1; i < smooth.size(); ++i)
    canvas.line(X(train.steps[i - 1]), Y(smooth[i - 1]), X(train.steps[i]),
                Y(smooth[i]), kTrain, 2);
  for (size_t i = 0; i < validation.steps.size(); ++i) {
    if (i > 0)
      canvas.line(X(validation.steps[i - 1]), Y(validation.values[i - 1]),
                  X(validation.steps[i]), Y(validation.values[i]), kValidation,
                  2);
    canvas.fillRect(std::lround(X(validation.steps[i])) - 4,
                    std::lround(Y(validation.values[i])) - 4, 9, 9,
                    kValidation);
  }

  canvas.text(left, 20, model + ": loss per step", kInk, 3);
  canvas.text(left + static_cast<int64_t>(plotW) / 2 - Canvas::textWidth("step") / 2,
              height - 30, "step", kInk);
  int64_t legendX = left + static_cast<int64_t>(plotW) - 330;
  canvas.fillRect(legendX, top + 16, 24, 3, kTrain);
  canvas.text(legendX + 32, top + 11, "train (20-step mean)", kInk);
  if (!validation.steps.empty()) {
    canvas.fillRect(legendX + 8, top + 34, 9, 9, kValidation);
    char text[64];
    std::snprintf(text, sizeof text, "validation (last %.4f)",
                  validation.values.back());
    canvas.text(legendX + 32, top + 33, text, kInk);
  }
  return writePng(runDir + "/loss.png", canvas.image());
}

Status writePredictionGrid(const LoadedModel &model, NamedTensors &params,
                           const EvalSet &set, const std::string &path) {
  StatusOr<EntryCall> predict =
      EntryCall::prepare(model.artifact, *model.program, "predict");
  if (!predict)
    return predict.status();
  const int64_t batch = model.batch(), n = model.numPatches();
  const ModelImageShape shape = model.imageShape();
  const int64_t c = shape.channels, h = shape.height, w = shape.width;
  // @predict returns [B, N, P] with P = p * p * C in (row, col, channel)
  // order: the patch size follows.
  const std::vector<int64_t> &outShape = predict->result(0).shape;
  const int64_t values = outShape.size() == 3 ? outShape[2] : 0;
  const int64_t p = std::lround(std::sqrt(static_cast<double>(values) / c));
  if (outShape.size() != 3 || outShape[0] != batch || outShape[1] != n ||
      p * p * c != values || w % p != 0)
    return Status::error("the artifact's predict returns " +
                         shapeToString(outShape) + ", not [B, N, P]");
  const int64_t gw = w / p;
  HostTensor images = sliceImages(set, 0, batch);
  HostTensor prefix = slicePrefix(set, 0, batch);
  std::map<std::string, HostTensor *> arguments = byName(params);
  arguments["images"] = &images;
  arguments["prefix"] = &prefix;
  if (Status s = (*predict)(arguments); !s)
    return s;
  const float *out =
      reinterpret_cast<const float *>(predict->result(0).bytes.data());
  const float *in = reinterpret_cast<const float *>(images.bytes.data());

  const int64_t shown = std::min<int64_t>(batch, 8), columns = 4;
  const int scale = static_cast<int>(std::max<int64_t>(1, 112 / std::max(h, w)));
  const int64_t cellW = w * scale, cellH = h * scale, gap = 6, pairGap = 30;
  const int64_t pairW = 2 * cellW + gap;
  const int64_t rows = (shown + columns - 1) / columns;
  Canvas canvas(70 + rows * (cellH + 40), 20 + columns * (pairW + pairGap),
                kWhite);
  canvas.text(20, 14, "each pair: the image, and its first K patches with the",
              kInk);
  canvas.text(20, 34, "prediction of every later patch by the model", kInk);
  for (int64_t b = 0; b < shown; ++b) {
    const float *image = in + b * c * h * w;
    auto pixel = [&](int64_t y, int64_t x, int64_t ch) {
      return image[(ch * h + y) * w + x];
    };
    Image original = Image::blank(h, w, c), predicted = Image::blank(h, w, c);
    const int64_t k = set.prefix[b];
    for (int64_t patch = 0; patch < n; ++patch) {
      const int64_t py = patch / gw * p, px = patch % gw * p;
      // The target's own statistics (Bessel's variance, as the loss).
      double mean = 0.0, var = 0.0;
      for (int64_t y = 0; y < p; ++y)
        for (int64_t x = 0; x < p; ++x)
          for (int64_t ch = 0; ch < c; ++ch)
            mean += pixel(py + y, px + x, ch);
      mean /= values;
      for (int64_t y = 0; y < p; ++y)
        for (int64_t x = 0; x < p; ++x)
          for (int64_t ch = 0; ch < c; ++ch)
            var += std::pow(pixel(py + y, px + x, ch) - mean, 2);
      var /= values - 1;
      const float *guess = out + (b * n + patch - 1) * values;
      for (int64_t y = 0; y < p; ++y)
        for (int64_t x = 0; x < p; ++x)
          for (int64_t ch = 0; ch < c; ++ch) {
            double given = pixel(py + y, px + x, ch);
            original.at(py + y, px + x, ch) = denormalizePixel(given, ch, c);
            double value =
                patch < k ? given
                          : guess[(y * p + x) * c + ch] * std::sqrt(var + 1e-6) +
                                mean;
            predicted.at(py + y, px + x, ch) = denormalizePixel(value, ch, c);
          }
    }
    const int64_t x0 = 20 + (b % columns) * (pairW + pairGap);
    const int64_t y0 = 70 + (b / columns) * (cellH + 40);
    canvas.text(x0, y0, "K=" + std::to_string(k) + " of " + std::to_string(n),
                kInk);
    canvas.blit(original, x0, y0 + 20, scale);
    canvas.blit(predicted, x0 + cellW + gap, y0 + 20, scale);
  }
  return writePng(path, canvas.image());
}

} // namespace aim::rt
