//===- Presets.h - the named model configurations -------------------------===//
#ifndef AIMC_FRONTENDS_PRESETS_H
#define AIMC_FRONTENDS_PRESETS_H

#include "common/ModelConfig.h"

#include <optional>
#include <string>
#include <vector>

namespace aim {

/// Every preset in listing order: aim-fmnist (CPU work) first, then AIM.md's
/// sizes aim-600m, aim-1b, aim-3b, aim-7b.
const std::vector<ModelConfig> &modelPresets();

std::optional<ModelConfig> findPreset(const std::string &name);

} // namespace aim

#endif // AIMC_FRONTENDS_PRESETS_H
