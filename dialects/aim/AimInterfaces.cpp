//===- AimInterfaces.cpp - op interfaces of the aim dialect ---------------===//
#include "dialects/aim/AimInterfaces.h"

#include "dialects/aim/AimInterfaces.cpp.inc"
