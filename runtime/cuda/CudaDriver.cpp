//===- CudaDriver.cpp - the CUDA driver, loaded with dlopen ---------------===//
#include "runtime/cuda/CudaDriver.h"

#include "runtime/LaunchEnvironment.h"

#include <cstdlib>
#include <dlfcn.h>

namespace aim::rt {

namespace {
/// cuGetProcAddress as of CUDA 12 (cuda.h maps the name to _v2).
using GetProcAddress = CUresult (*)(const char *, void **, int, cuuint64_t,
                                    CUdriverProcAddressQueryResult *);
using DriverGetVersion = CUresult (*)(int *);
} // namespace

StatusOr<std::unique_ptr<CudaDriver>> CudaDriver::open(int ordinal) {
  const char *override = std::getenv("AIMC_CUDA_DRIVER");
  std::string path = override && *override ? override : "libcuda.so.1";
  void *library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library)
    return Status::error("--device cuda: cannot load the CUDA driver (" +
                         path + "): " + dlerror() +
                         " (no NVIDIA driver on this machine?)");
  std::unique_ptr<CudaDriver> driver(new CudaDriver);
  driver->library = library;
  auto getProc = reinterpret_cast<GetProcAddress>(
      dlsym(library, "cuGetProcAddress_v2"));
  auto getVersion =
      reinterpret_cast<DriverGetVersion>(dlsym(library, "cuDriverGetVersion"));
  if (!getProc || !getVersion)
    return Status::error("--device cuda: " + path +
                         " lacks cuGetProcAddress_v2 (a CUDA 12 or newer "
                         "driver is needed)");
  int version = 0;
  if (getVersion(&version) != CUDA_SUCCESS || version < 12000)
    return Status::error("--device cuda: the CUDA driver is version " +
                         std::to_string(version / 1000) + "." +
                         std::to_string(version % 1000 / 10) +
                         "; aim-run needs 12.0 or newer");
  int abi = version < CUDA_VERSION ? version : CUDA_VERSION;
#define AIM_CUDA_RESOLVE(name)                                                 \
  {                                                                            \
    void *fn = nullptr;                                                        \
    CUdriverProcAddressQueryResult found;                                      \
    if (getProc(#name, &fn, abi, CU_GET_PROC_ADDRESS_DEFAULT, &found) !=       \
            CUDA_SUCCESS ||                                                    \
        !fn)                                                                   \
      return Status::error("--device cuda: the CUDA driver has no " #name);   \
    driver->name = reinterpret_cast<decltype(driver->name)>(fn);               \
  }
  AIM_CUDA_DRIVER_FUNCTIONS(AIM_CUDA_RESOLVE)
#undef AIM_CUDA_RESOLVE

  if (Status s = driver->check(driver->cuInit(0), "cuInit"); !s)
    return s;
  int count = 0;
  if (Status s = driver->check(driver->cuDeviceGetCount(&count),
                               "cuDeviceGetCount");
      !s)
    return s;
  if (ordinal == kByLocalRank && count > 0)
    ordinal = LaunchEnvironment::current().localRank % count;
  if (ordinal < 0 || ordinal >= count)
    return Status::error("--device cuda: there is no CUDA device " +
                         std::to_string(ordinal) + " (" +
                         std::to_string(count) + " found)");
  driver->deviceOrdinal = ordinal;
  if (Status s = driver->check(driver->cuDeviceGet(&driver->device, ordinal),
                               "cuDeviceGet");
      !s)
    return s;
  char name[256] = {};
  driver->cuDeviceGetName(name, sizeof(name) - 1, driver->device);
  driver->deviceName = name;
  driver->cuDeviceGetAttribute(
      &driver->major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
      driver->device);
  driver->cuDeviceGetAttribute(
      &driver->minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
      driver->device);
  if (Status s = driver->check(driver->cuDevicePrimaryCtxRetain(
                                   &driver->primaryContext, driver->device),
                               "cuDevicePrimaryCtxRetain");
      !s)
    return s;
  if (Status s = driver->check(driver->cuCtxSetCurrent(driver->primaryContext),
                               "cuCtxSetCurrent");
      !s)
    return s;
  return driver;
}

CudaDriver::~CudaDriver() {
  if (primaryContext && cuDevicePrimaryCtxRelease)
    cuDevicePrimaryCtxRelease(device);
  // The library stays loaded: code loaded from artifacts may still refer to
  // it while static destructors run.
}

Status CudaDriver::check(CUresult result, const std::string &what) const {
  if (result == CUDA_SUCCESS)
    return Status::ok();
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName)
    cuGetErrorName(result, &name);
  if (cuGetErrorString)
    cuGetErrorString(result, &text);
  return Status::error(what + ": " +
                       (name ? name : "CUDA error " + std::to_string(result)) +
                       (text ? std::string(" (") + text + ")" : ""));
}

int CudaDriver::attribute(CUdevice_attribute which, int fallback) const {
  int value = 0;
  return cuDeviceGetAttribute(&value, which, device) == CUDA_SUCCESS && value > 0
             ? value
             : fallback;
}

std::string CudaDriver::chip() const {
  std::string chip = "sm_" + std::to_string(major) + std::to_string(minor);
  return major == 9 && minor == 0 ? chip + "a" : chip;
}

} // namespace aim::rt
