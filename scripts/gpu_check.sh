#!/usr/bin/env bash
# The GPU check: every GPU figure the README asks for, in one run of at most 6 minutes on one H100/H200.
#
#   scripts/gpu_check.sh            # on a machine with a CUDA GPU
#   scripts/gpu_check.sh --dry      # (or DRY=1) the same steps on the CPU at tiny sizes, < 1 min idle
#
# Steps, each under its own time limit (capped by what is left of BUDGET_S, 345 s by default), then
# one table `| step | setting | value | unit |` with one row per figure:
#
#   cuda_tests       the tests that need CUDA (files calling torch.cuda.is_available(), tests named *cuda*)
#   overhead         scripts/bench_overhead.py --device cuda: Lightning / plain PyTorch per step
#   classifiers      scripts/bench_classifiers.py: images/s per arch, 32 px batch 128 from scratch and
#                    224 px batch 64 ImageNet architectures, bf16, channels-last, eager and compiled
#   device_batches   scripts/bench_device_batches.py --device cuda --compile: DataLoader / device batches
#   generation       scripts/bench_generations.py on Colored MNIST at full size (60,000 + 10,000 digits,
#                    the paper's config and panel, 1 epoch per fit; synthetic digits of the same count
#                    when MNIST_ROOT (default data) has no MNIST/raw/)
#   sd               scripts/bench_sd.py --device cuda at 512 px: LoRA training and sampling, peak memory
#
# A step that fails or runs out of time shows FAILED / TIMEOUT in the value column (its log is named
# below the table); the figures it printed before are kept. Logs stay in GPU_CHECK_DIR (default: a
# new temporary folder). Environment: PYTHON (default python), BUDGET_S, MNIST_ROOT, GPU_CHECK_DIR.
set -uo pipefail

DRY=${DRY:-0}
for arg in "$@"; do
    case "$arg" in
        --dry) DRY=1 ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $arg (use --dry or --help)" >&2; exit 2 ;;
    esac
done
[[ "$DRY" == 0 || "$DRY" == 1 ]] || { echo "gpu_check.sh: DRY must be 0 or 1, got $DRY" >&2; exit 2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
PYTHON=${PYTHON:-python}
BUDGET_S=${BUDGET_S:-345}
OUT=${GPU_CHECK_DIR:-$(mktemp -d -t gpu_check.XXXXXX)}
mkdir -p "$OUT"
START=$SECONDS
export PYTHONUNBUFFERED=1

if [[ "$DRY" == 0 ]] && ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check.sh: no CUDA device visible to $PYTHON; run 'scripts/gpu_check.sh --dry' for the CPU rehearsal" >&2
    exit 2
fi

# run_step NAME LIMIT_S COMMAND...: output to $OUT/NAME.log, exit status to $OUT/NAME.rc, seconds to $OUT/NAME.s.
run_step() {
    local name=$1 limit=$2 left began
    shift 2
    left=$((BUDGET_S - (SECONDS - START) - 5))
    ((limit > left)) && limit=$left
    if ((limit < 5)); then
        echo "budget" >"$OUT/$name.rc"
        echo 0 >"$OUT/$name.s"
        return
    fi
    began=$SECONDS
    echo "[gpu_check] $name (limit ${limit} s): $*" >&2
    timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    echo $? >"$OUT/$name.rc"
    echo $((SECONDS - began)) >"$OUT/$name.s"
    echo "[gpu_check] $name: exit $(cat "$OUT/$name.rc") after $(cat "$OUT/$name.s") s" >&2
}

CUDA_TESTS=$(grep -rl --include='test_*.py' 'torch.cuda.is_available()' tests | sort | tr '\n' ' ')
MNIST=${MNIST_ROOT:-data}
if [[ "$DRY" == 1 ]]; then MNIST_COUNTS="300 60"; else MNIST_COUNTS="60000 10000"; fi
# The inputs of later steps are built in the background while the first steps run (2 cores: the
# dry run's wall time drops by the builders' imports). Their logs: $OUT/inputs_*.log.
INPUT_PIDS=()
if [[ "$DRY" == 1 || ! -f "$MNIST/MNIST/raw/train-images-idx3-ubyte" ]]; then
    MNIST="$OUT/synthetic-mnist"
    # Synthetic digits of MNIST's counts (sklearn's 8x8 digits upsampled to 20 px in a 28 px frame),
    # written as the four IDX files that torchvision reads.
    "$PYTHON" - "$MNIST" $MNIST_COUNTS >"$OUT/inputs_mnist.log" 2>&1 <<'EOF' &
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

root, n_train, n_test = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
digits = load_digits()
gray = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
gray = F.interpolate(gray, size=(20, 20), mode="bilinear", align_corners=False)
gray = F.pad((gray.clamp(0, 1) * 255).round().to(torch.uint8), (4, 4, 4, 4))[:, 0].numpy()
labels = digits.target.astype(np.uint8)
raw = root / "MNIST" / "raw"
raw.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
for prefix, n in (("train", n_train), ("t10k", n_test)):
    pick = rng.integers(0, len(gray), n)
    for suffix, array, magic in (("images-idx3-ubyte", gray[pick], 2051), ("labels-idx1-ubyte", labels[pick], 2049)):
        header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
        (raw / f"{prefix}-{suffix}").write_bytes(header + np.ascontiguousarray(array).tobytes())
EOF
    INPUT_PIDS+=($!)
    echo "synthetic $MNIST_COUNTS" >"$OUT/mnist_source"
else
    echo "real MNIST from $MNIST" >"$OUT/mnist_source"
fi

# The Colored MNIST generation: the paper's config with 1 epoch per fit (the generator's step floor
# min_steps off, so 1 epoch is 1 epoch); the CLIP filter's weights are a download, so the uncertainty
# filter scores alone. bench_generations needs 2 generations (K < N); the dry run takes 3, so its check of
# the generations after the queue is full has one to compare.
if [[ "$DRY" == 1 ]]; then GENERATIONS=3; else GENERATIONS=2; fi
GENERATION=(
    scripts/bench_generations.py -n "$GENERATIONS" -k 1 --epochs 1 --generator-epochs 1 --image-size 32 --threads 0
    --run-dir "$OUT/generation_run" --
    --config configs/colored_mnist_unbiased.yaml --data.init_args.root "$MNIST"
    --loop.generations "$GENERATIONS" --loop.queue_capacity 1 --loop.generator_epochs 1 --loop.early_stopping_patience 1
    --generator.init_args.min_steps null --trainer.max_epochs 1 --trainer.enable_progress_bar false
    --filter.scorers '[{class_path: selfloop.filtering.scorers.UncertaintyScorer}]'
)
if [[ "$DRY" == 1 ]]; then
    "$PYTHON" - "$OUT/tiny-sd" >"$OUT/inputs_tiny_sd.log" 2>&1 <<'EOF' &
import sys
from pathlib import Path

sys.path.insert(0, "tests/generators")  # the tests' tiny Stable Diffusion, saved as a diffusers folder
from test_stable_diffusion import build_tiny_sd

build_tiny_sd(Path(sys.argv[1]))
EOF
    INPUT_PIDS+=($!)
fi
# wait_inputs: the background builders are done (a failed one shows as the failure of its step).
wait_inputs() {
    local pid
    for pid in "${INPUT_PIDS[@]}"; do
        wait "$pid" || echo "[gpu_check] an input builder failed: see $OUT/inputs_*.log" >&2
    done
    INPUT_PIDS=()
}

if [[ "$DRY" == 1 ]]; then
    run_step cuda_tests 60 "$PYTHON" -m pytest -q -p no:cacheprovider -n 0 -rs -k cuda $CUDA_TESTS
    run_step overhead 60 "$PYTHON" scripts/bench_overhead.py --device cpu --steps 10 --repeats 1 --warmup-steps 2
    run_step classifiers 60 "$PYTHON" scripts/bench_classifiers.py --device cpu --threads 1 \
        --scratch-archs lenet --scratch-size 16 --scratch-batch 4 --imagenet-archs mobilenet_v3 \
        --imagenet-batch 1 --steps 1 --warmup-steps 0 --compile no yes --compile-backend eager
    run_step device_batches 60 "$PYTHON" scripts/bench_device_batches.py --device cpu --steps 10 \
        --repeats 1 --warmup-steps 1 --image-size 16 --compile --compile-backend eager
    wait_inputs
    run_step generation 120 "$PYTHON" "${GENERATION[@]}" --loop.archs '[lenet]' \
        --generator.init_args.width 8 --generator.init_args.latent_dim 8 --loop.fid_extractor none
    run_step sd 60 "$PYTHON" scripts/bench_sd.py --device cpu --threads 1 --weights pretrained \
        --pretrained-path "$OUT/tiny-sd" --resolution 32 --num-classes 2
else
    run_step cuda_tests 20 "$PYTHON" -m pytest -q -p no:cacheprovider -n 0 -rs -k cuda $CUDA_TESTS
    run_step overhead 30 "$PYTHON" scripts/bench_overhead.py --device cuda --cudnn-benchmark
    run_step classifiers 90 "$PYTHON" scripts/bench_classifiers.py --device cuda --budget-s 70
    # About Colored MNIST's 54,000 training digits, in whole batches of 128 (no recompilation).
    run_step device_batches 50 "$PYTHON" scripts/bench_device_batches.py --device cuda --data synthetic \
        --num-images 53760 --batch-size 128 --steps 200 --repeats 3 --compile
    wait_inputs
    run_step generation 70 "$PYTHON" "${GENERATION[@]}"
    run_step sd 85 "$PYTHON" scripts/bench_sd.py --device cuda
fi

"$PYTHON" - "$OUT" "$DRY" "$((SECONDS - START))" <<'EOF'
"""Read every step's log and print the table: one row per figure, FAILED / TIMEOUT where a step broke."""

import re
import sys
from pathlib import Path

out, dry, total = Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
STEPS = ("cuda_tests", "overhead", "classifiers", "device_batches", "generation", "sd")


def keys(text):
    return dict(re.findall(r"^(\w+): (.*)$", text, flags=re.MULTILINE))


def table(text, first):
    """Rows (dicts) of the whitespace table whose header starts with the words ``first``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split()[: len(first)] == first:
            names, rows = line.split(), []
            for row in lines[i + 1 :]:
                cells = row.split()
                if len(cells) != len(names):
                    break
                rows.append(dict(zip(names, cells)))
            return rows
    return []


def cuda_tests(text, found):
    summary = re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", text.splitlines()[-1] if text.strip() else "")
    counts = {kind: int(n) for n, kind in summary}
    unit = ", ".join(f"{counts[k]} {k}" for k in ("failed", "errors", "error", "skipped") if counts.get(k))
    return [("tests selected by -k cuda", str(counts.get("passed", 0)), "passed" + (f" ({unit})" if unit else ""))]


def overhead(text, found):
    setting = found.get("arch", "?").replace("  ", " ")
    return [
        (f"{setting}: Lightning / plain loop", found["ratio"], "x"),
        ("Lightning step", found["lightning_ms_per_step"], "ms"),
        ("plain PyTorch step", found["plain_ms_per_step"], "ms"),
    ]


def classifiers(text, found):
    rows = []
    for r in table(text, ["setting", "arch"]):
        options = f"{r['precision']}{' channels-last' if r['channels_last'] == 'yes' else ''}"
        compiled = "compiled" if r["compile"] == "yes" else "eager"
        setting = f"{r['arch']} {r['size']} px batch {r['batch']} {options} {compiled} ({r['setting']})"
        rows.append((setting, r["images_per_s"], "img/s"))
    return rows


def device_batches(text, found):
    setting = found.get("setup", "?").replace("  ", " ")
    rows = [
        (f"{setting}: DataLoader / device batches, steady step", found["steady_ratio"], "x"),
        ("DataLoader path steady step", found["dataloader_steady_ms_per_step"], "ms"),
        ("device batches steady step", found["device_batches_steady_ms_per_step"], "ms"),
    ]
    if "compiled_steady_ratio" in found:
        rows += [
            (f"compiled ({found['compile_backend']}): DataLoader / device batches", found["compiled_steady_ratio"], "x"),
            ("compiled device batches steady step", found["compiled_device_batches_steady_ms_per_step"], "ms"),
        ]
    return rows


def generation(text, found):
    source = (out / "mnist_source").read_text().strip()
    rows = []
    for r in table(text, ["generation", "wall_s"]):
        setting = f"Colored MNIST ({source}), generation {r['generation']}, {r['train_images']} train images, 1 epoch per fit"
        rows.append((setting, r["wall_s"], "s"))
    if not rows:
        # Stopped before bench_generations printed its table: the loop's own "done in" lines of the
        # phases that finished, summed per generation (work between phases not counted).
        done = {}
        for n, s in re.findall(r"\[selfloop\] g(\d+)/\d+ .* done in ([\d.]+) s", text):
            done[int(n)] = done.get(int(n), 0.0) + float(s)
        for n, s in sorted(done.items()):
            setting = f"Colored MNIST ({source}), generation {n}, phases finished before the limit (partial)"
            rows.append((setting, f"{s:.2f}", "s"))
    if "max_rss_mib" in found:
        rows.append(("peak process RSS", found["max_rss_mib"], "MiB"))
    return rows


def sd(text, found):
    rows = []
    model = "SD 1.5 shapes" if found.get("weights", "").startswith("random-sd15-shapes") else "tiny SD"
    for r in table(text, ["phase", "batch_size"]):
        what = "LoRA training" if r["phase"] == "train" else f"sampling, {r['denoise_steps']} steps"
        setting = f"{model} {r['resolution']} px, batch {r['batch_size']}, {what}"
        rows.append((setting, r["images_per_s"], "img/s"))
        rows.append((setting + ", peak memory", r["peak_mem_mib"], "MiB"))
    return rows


PARSERS = {
    "cuda_tests": cuda_tests,
    "overhead": overhead,
    "classifiers": classifiers,
    "device_batches": device_batches,
    "generation": generation,
    "sd": sd,
}
rows, broken, seconds = [], [], {}
for step in STEPS:
    rc = (out / f"{step}.rc").read_text().strip() if (out / f"{step}.rc").is_file() else "missing"
    seconds[step] = (out / f"{step}.s").read_text().strip() if (out / f"{step}.s").is_file() else "0"
    log = out / f"{step}.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    try:
        parsed = PARSERS[step](text, keys(text))
    except (KeyError, IndexError, ValueError):
        parsed = []
    rows += [(step, *row) for row in parsed]
    if rc == "budget":
        rows.append((step, "not started: the 6-minute budget was spent", "SKIPPED", "-"))
    elif rc in ("124", "137"):
        rows.append((step, f"stopped at its time limit after {seconds[step]} s", "TIMEOUT", "-"))
        broken.append(step)
    elif rc not in ("0", "5") or not parsed:  # pytest's 5: nothing selected
        rows.append((step, f"exit status {rc}", "FAILED", "-"))
        broken.append(step)

if dry:
    print("GPU check, DRY RUN: every step on the CPU at tiny sizes (these are not GPU figures)")
else:
    import torch

    print(f"GPU check on {torch.cuda.get_device_name(0)} (torch {torch.__version__})")
print()
print("| step | setting | value | unit |")
print("|---|---|---|---|")
for step, setting, value, unit in rows:
    print(f"| {step} | {setting} | {value} | {unit} |")
print()
print("step seconds: " + ", ".join(f"{s} {seconds[s]}" for s in STEPS) + f"; total {total} s")
for step in broken:
    print(f"log of {step}: {out / (step + '.log')}")
sys.exit(1 if broken else 0)
EOF
