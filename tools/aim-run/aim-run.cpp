//===- aim-run.cpp - train and inspect a compiled model -------------------===//
//
// aim-run train m.aimx ...      train (Train.cpp)
// aim-run eval-loss m.aimx ...  validation loss of a checkpoint
// aim-run plot RUN_DIR ...      a run's pictures (EvalAndPlot.cpp)
// aim-run check m.aimx ...      host against GPU (CheckAndBench.cpp)
// aim-run bench m.aimx ...      step and per-kernel times
//
//===----------------------------------------------------------------------===//

#include "tools/aim-run/Commands.h"

#include <cstdio>
#include <cstring>
#include <malloc.h>

namespace aim::rt {

const char *const kUsage =
    "usage: aim-run train m.aimx [--steps N] [--out RUN_DIR] [--resume]\n"
    "                            [--seed S] [--lr X] [--schedule "
    "cosine|constant]\n"
    "                            [--data DIR [--no-augment]] [--data-threads "
    "N]\n"
    "                            [--fixed-batch X.npy K.npy] [--init-params "
    "P]\n"
    "                            [--checkpoint-every K] [--stop-after K]\n"
    "                            [--eval-images M] [--eval-data DIR] "
    "[--threads N]\n"
    "                            [--device host|cuda] [--accumulate A]\n"
    "                            [--gemm-precision fp32|tf32|bf16]\n"
    "       aim-run eval-loss m.aimx --params P [--data DIR] [--images M] "
    "[--seed S]\n"
    "                            [--threads N]\n"
    "       aim-run plot RUN_DIR [--artifact m.aimx] [--eval-data DIR] "
    "[--seed S]\n"
    "       aim-run check m.aimx [--seed S] [--gemm-precision P]\n"
    "       aim-run bench m.aimx [--device host|cuda] [--steps N] [--warmup "
    "W]\n"
    "                            [--per-kernel [--csv FILE]] [--seed S]\n"
    "                            [--gemm-precision P]\n"
    "\n"
    "train:\n"
    "  --steps N             steps of the run (default 100); the schedule\n"
    "                        (AIM's warm-up and cosine) is computed from it\n"
    "  --lr X                peak learning rate (default 1e-3)\n"
    "  --schedule constant   use --lr at every step instead\n"
    "  --out RUN_DIR         checkpoints, metrics.jsonl and pictures (default "
    "run)\n"
    "  --resume              continue the run in RUN_DIR exactly\n"
    "  --data DIR            train on the PNG/JPEG files under DIR "
    "(recursively),\n"
    "                        with random resized crops, flips and colour "
    "jitter\n"
    "                        (--no-augment: whole images, resized); default:\n"
    "                        Debian's Fashion-MNIST train set; 'synthetic':\n"
    "                        generated images (no files; validation on\n"
    "                        held-out generated images)\n"
    "  --data-threads N      threads decoding and augmenting batches (default "
    "1)\n"
    "  --fixed-batch X K     train on one batch (.npy images and prefix "
    "lengths)\n"
    "  --init-params P       start from these weights (.safetensors)\n"
    "  --checkpoint-every K  also checkpoint (and validate) every K steps\n"
    "  --stop-after K        stop after K steps of this invocation, with a\n"
    "                        checkpoint; --resume continues the run\n"
    "  --eval-images M       validation images (default 1024; 0: none), from\n"
    "  --eval-data DIR       this folder (default: Fashion-MNIST t10k)\n"
    "  --threads N           compute threads of the GEMMs (default: every "
    "core;\n"
    "                        a resumed run keeps the run's count, since the "
    "last\n"
    "                        bits of the sums depend on it)\n"
    "  --accumulate A        A micro-batches of the artifact's batch a step\n"
    "                        (gradients averaged over all their targets)\n"
    "  (under mpirun -np N each rank takes its slice of every step's batch:\n"
    "  data parallelism, Open MPI loaded with dlopen; an artifact of aimc\n"
    "  --mesh dp=D,tp=T is one rank's program and runs on D*T ranks, with\n"
    "  --device cuda its collectives over NCCL (dlopen, or $AIMC_NCCL);\n"
    "  docs/distributed.md)\n"
    "  --collective-timeout S  seconds a rank waits for the others (gradient\n"
    "                        sums, a grid's collectives) before it stops the\n"
    "                        job (default 600)\n"
    "  --device cuda         run the step on the GPU (an artifact compiled\n"
    "                        with --target host,sm_90a; the driver is loaded\n"
    "                        with dlopen; the local rank's GPU under mpirun or\n"
    "                        srun)\n"
    "  --gemm-precision P    how the GPU's GEMMs multiply (train, check, bench):\n"
    "                        fp32 (default), or the tensor cores' tf32 or bf16\n"
    "                        on the float32 operands, float32 sums and results\n"
    "eval-loss: the loss of checkpoint P on held-out images (default: all of\n"
    "  Fashion-MNIST t10k), each with a prefix length fixed by --seed and its\n"
    "  index, so checkpoints are compared on the same targets\n"
    "plot: RUN_DIR/loss.png from metrics.jsonl; with --artifact also\n"
    "  RUN_DIR/predictions.png from RUN_DIR/model.safetensors\n"
    "check: loss_and_grads and one train_step (gradient norm, clipping, AdamW)\n"
    "  of one synthetic batch on the host and on the GPU (the local rank's),\n"
    "  then two train_steps in place as training runs them, compared tensor\n"
    "  by tensor; exit status 1 when any differs beyond its stated tolerance\n"
    "  (wider with --gemm-precision tf32 or bf16)\n"
    "bench: train_step repeated on one synthetic batch (default 3 warm-up,\n"
    "  20 timed steps): step time and images/s; --per-kernel: each GPU\n"
    "  kernel's device time per step next to its roofline estimate (--csv:\n"
    "  all of them to FILE)\n";

} // namespace aim::rt

int main(int argc, char **argv) {
  using namespace aim::rt;
  // The host code allocates its temporaries each step (the arena plan is not
  // used by it yet). Keep freed blocks up to 32 MiB (glibc's most) in the
  // heap instead of returning them to the kernel, so that each step does not
  // fault its temporaries in again.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  if (argc < 3)
    return fail(std::string("expected a command and its artifact or run "
                            "directory\n") +
                kUsage);
  std::string command = argv[1];
  if (command == "train")
    return runTrain(argc, argv);
  if (command == "eval-loss")
    return runEvalLoss(argc, argv);
  if (command == "plot")
    return runPlot(argc, argv);
  if (command == "check")
    return runCheck(argc, argv);
  if (command == "bench")
    return runBench(argc, argv);
  return fail("unknown command '" + command +
              "' (train, eval-loss, plot, check or bench)\n" + kUsage);
}
