//===- Npy.h - read and write NumPy .npy files ----------------------------===//
//
// Format 1.0-3.0
// (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
// magic, version, a Python dict literal header {'descr', 'fortran_order',
// 'shape'}, then raw data. Little-endian float32/float64/int32/int64, C order.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_NPY_H
#define AIMC_COMMON_NPY_H

#include "common/HostTensor.h"
#include "common/Status.h"

#include <string>

namespace aim {

StatusOr<HostTensor> readNpy(const std::string &path);
Status writeNpy(const std::string &path, const HostTensor &tensor);

} // namespace aim

#endif // AIMC_COMMON_NPY_H
