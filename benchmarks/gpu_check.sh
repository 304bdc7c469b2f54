#!/usr/bin/env bash
# The GPU check a maintainer runs on a CUDA machine (docs/gpu.md):
#
#   benchmarks/gpu_check.sh [--device cuda|auto|cpu] [--quick] [--jobs N]
#
# 1. the test suite's GPU-marked tests (pytest -m gpu): every reference model gives the CPU's
#    verdicts on CUDA, the watch makes no host sync between log intervals, the user's optimizer
#    state stays on its device, autocast on CUDA;
# 2. benchmarks/device_verdicts.py: `nndiag check --json` on every reference model and zoo file
#    with --device cuda and with --device cpu, as ONE markdown table (verdicts equal, the probes
#    that differ, CPU and CUDA probe seconds);
# 3. benchmarks/watch_overhead.py --device cuda: the watch's cost per step against a plain step.
#
# --device cpu (or auto on a machine without a GPU) and --quick run the same steps on a CPU with a
# small file subset, so the script itself can be exercised anywhere. Exit status: 0 when the tests
# pass and every verdict is equal, 1 otherwise, 2 for a usage error (no GPU for --device cuda).
set -u
cd "$(dirname "$0")/.."

device=cuda
quick=""
jobs=4
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="${2:?--device needs cuda, auto or cpu}"; shift 2 ;;
        --device=*) device="${1#--device=}"; shift ;;
        --quick) quick="--quick"; shift ;;
        --jobs) jobs="${2:?--jobs needs a number}"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (use --device cuda|auto|cpu, --quick, --jobs N)" >&2
           exit 2 ;;
    esac
done
python=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

has_cuda=$("$python" -c "import torch; print(int(torch.cuda.is_available()))") || exit 2
case "$device" in
    cuda*) if [ "$has_cuda" != 1 ]; then
               echo "gpu_check.sh: --device $device, but torch sees no CUDA GPU here." \
                    "Run it on a GPU machine, or exercise it with --device cpu --quick." >&2
               exit 2
           fi ;;
    auto|cpu) ;;
    *) echo "gpu_check.sh: --device must be cuda, cuda:N, auto or cpu (got $device)" >&2; exit 2 ;;
esac
# the watch benchmark's own --device takes cpu|cuda|both: auto is whatever torch has
watch_device=$device
case "$device" in cuda*) watch_device=cuda ;; auto) [ "$has_cuda" = 1 ] && watch_device=cuda || watch_device=cpu ;; esac

status=0
"$python" - <<'PY'
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
print(f"# nndiag GPU check: torch {torch.__version__}, CUDA {torch.version.cuda}, {gpu}, "
      f"python {platform.python_version()}")
PY

echo
echo "## 1. GPU-marked tests (pytest -m gpu)"
echo
# every GPU-marked test of the suite; exit 5 (none collected) counts as a failure too
"$python" -m pytest -m gpu -q -rsP -p no:cacheprovider
rc=$?
[ $rc -eq 0 ] || status=1

echo
echo "## 2. nndiag check --device $device against --device cpu"
echo
"$python" benchmarks/device_verdicts.py --device "$device" $quick --jobs "$jobs"
rc=$?
[ $rc -eq 0 ] || status=1

echo
echo "## 3. Watch overhead (benchmarks/watch_overhead.py --device $watch_device)"
echo
if [ -n "$quick" ]; then
    "$python" benchmarks/watch_overhead.py --device "$watch_device" --steps 50 --warmup 5 || status=1
else
    "$python" benchmarks/watch_overhead.py --device "$watch_device" || status=1
fi

echo
if [ $status -eq 0 ]; then echo "gpu_check: OK"; else echo "gpu_check: FAILED (see above)"; fi
exit $status
