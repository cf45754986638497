//===- Commands.h - aim-run's commands ------------------------------------===//
#ifndef AIMC_TOOLS_AIMRUN_COMMANDS_H
#define AIMC_TOOLS_AIMRUN_COMMANDS_H

#include "tools/aim-run/RunSupport.h"

namespace aim::rt {

extern const char *const kUsage;

/// aim-run train m.aimx [...]: argv[1] is "train", argv[2] the artifact.
int runTrain(int argc, char **argv);
/// aim-run eval-loss m.aimx --params P [...].
int runEvalLoss(int argc, char **argv);
/// aim-run plot RUN_DIR [--artifact m.aimx] [...].
int runPlot(int argc, char **argv);
int runCheck(int argc, char **argv);
int runBench(int argc, char **argv);

/// RUN_DIR/loss.png, and RUN_DIR/predictions.png from the first batch of the
/// evaluation set of `dataDir` (empty: t10k) when the model can read it.
Status writeRunPictures(const LoadedModel &model, NamedTensors &params,
                        const std::string &runDir, const std::string &dataDir,
                        uint64_t seed);

} // namespace aim::rt

#endif // AIMC_TOOLS_AIMRUN_COMMANDS_H
