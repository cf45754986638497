//===- Pictures.h - the PNGs of a training run ----------------------------===//
//
// RUN_DIR/loss.png: the training loss per step (faint) with its moving
// average over 20 steps, and the validation loss at each evaluation (dots),
// against the step. RUN_DIR/predictions.png: for the first images of the
// evaluation set, the image next to the model's view of it -- its first K
// patches as given, every later patch as the model predicts it (output n - 1
// for patch n), un-normalised with that patch's own mean and variance as the
// loss normalises its target.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_TOOLS_AIMRUN_PICTURES_H
#define AIMC_TOOLS_AIMRUN_PICTURES_H

#include "tools/aim-run/Evaluation.h"

namespace aim::rt {

/// Reads RUN_DIR/metrics.jsonl, writes RUN_DIR/loss.png.
Status writeLossCurves(const std::string &runDir, const std::string &model);

/// Runs the artifact's @predict on the first batch of `set`, writes `path`.
Status writePredictionGrid(const LoadedModel &model, NamedTensors &params,
                           const EvalSet &set, const std::string &path);

} // namespace aim::rt

#endif // AIMC_TOOLS_AIMRUN_PICTURES_H
