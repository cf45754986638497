//===- FileIO.h - whole-file reads and atomic writes ----------------------===//
#ifndef AIMC_COMMON_FILEIO_H
#define AIMC_COMMON_FILEIO_H

#include "common/Status.h"

#include <string>

namespace aim {

StatusOr<std::string> readWholeFile(const std::string &path);

/// Writes `path`.tmp and renames it over `path`: readers never see a partial
/// file and a failed write leaves the old one intact.
Status writeFileAtomically(const std::string &path, const std::string &data);

} // namespace aim

#endif // AIMC_COMMON_FILEIO_H
