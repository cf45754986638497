# lit configuration for aimc: IR round trips, diagnostics, frontends and passes.
import os
import lit.formats

config.name = "aimc"
config.test_format = lit.formats.ShTest(True)
config.suffixes = [".mlir", ".test", ".yaml"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = config.aim_obj_root
config.environment["FILECHECK_OPTS"] = "-enable-var-scope"
config.substitutions.append(("%aim_src", config.aim_src_root))
config.environment["PATH"] = os.pathsep.join(
    [config.aim_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
# Debian's python3 has numpy (and torch): tests make their inputs with it.
config.substitutions.append(("%python", "/usr/bin/python3"))
# A CUDA driver that runs no kernel (test/fake-cuda): aim-run's CUDA path in CI.
# %fakegpu: the environment that points aim-run at it and at a cuBLASLt that
# computes on the CPU; %fakecuda: the driver alone.
config.substitutions.append(
    ("%fakegpu", "AIMC_CUDA_DRIVER=%s AIMC_CUBLASLT=%s" % (
        os.path.join(config.aim_lib_dir, "libfakecuda.so"),
        os.path.join(config.aim_lib_dir, "libfakecublaslt.so"))))
config.substitutions.append(
    ("%fakecuda", os.path.join(config.aim_lib_dir, "libfakecuda.so")))
# %fakenccl: an NCCL that sums with MPI on the fake driver's memory.
config.substitutions.append(
    ("%fakenccl", os.path.join(config.aim_lib_dir, "libfakenccl.so")))
