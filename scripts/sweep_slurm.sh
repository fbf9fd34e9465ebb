#!/usr/bin/env bash
# One run of a configs x seeds sweep per SLURM array task.
#
#   CONFIGS="configs/a.yaml configs/b.yaml" SEEDS="0 1 2" OUT=lightning_logs/sweeps \
#       sbatch --array=0-5 scripts/sweep_slurm.sh [extra CLI args]
#
# Task k runs config k / n_seeds with seed SEEDS[k % n_seeds] (configs outermost, the order of
# scripts/sweep.py), in the run directory <OUT>/<config stem>/seed_<s>, through scripts/sweep.py so
# a finished run is skipped and an unfinished one resumes. The array needs n_configs * n_seeds tasks.
#
# 120 s before the time limit SLURM sends TERM to the job step; sweep.py forwards it to the run and
# exits with 143, and this script then requeues the task, which resumes from the run's manifest.
# --requeue also lets SLURM requeue the task after a node failure or preemption.
#
# Environment: CONFIGS, SEEDS (space-separated), OUT (default lightning_logs/sweeps), PYTHON
# (default python), SWEEP_DRY_RUN=1 prints the command instead of running it.
#SBATCH --job-name=selfloop-sweep
#SBATCH --requeue
#SBATCH --signal=TERM@120
#SBATCH --time=24:00:00
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --output=slurm-%A_%a.out

set -euo pipefail

read -r -a configs <<< "${CONFIGS:?set CONFIGS to the config files, e.g. CONFIGS=\"configs/a.yaml configs/b.yaml\"}"
read -r -a seeds <<< "${SEEDS:?set SEEDS to the seeds, e.g. SEEDS=\"0 1 2\"}"
out="${OUT:-lightning_logs/sweeps}"
task="${SLURM_ARRAY_TASK_ID:?not an array task: submit with sbatch --array=0-N}"
total=$(( ${#configs[@]} * ${#seeds[@]} ))
if (( task < 0 || task >= total )); then
    echo "sweep_slurm: array task ${task} is outside 0..$(( total - 1 )) (${#configs[@]} configs x ${#seeds[@]} seeds)" >&2
    exit 2
fi
config="${configs[task / ${#seeds[@]}]}"
seed="${seeds[task % ${#seeds[@]}]}"

# SLURM runs a copy of this script from its spool folder, so the repository is where it was submitted.
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
cmd=("${PYTHON:-python}" scripts/sweep.py --configs "$config" --seeds "$seed" --out "$out")
if [[ "${SWEEP_DRY_RUN:-0}" == 1 ]]; then
    cmd+=(--dry-run)
fi
if (( $# > 0 )); then
    cmd+=(-- "$@")
fi
# srun makes the run a job step, the target of --signal; without SLURM (a local test) it runs directly.
launcher=()
if [[ -n "${SLURM_JOB_ID:-}" ]] && command -v srun > /dev/null; then
    launcher=(srun --ntasks=1)
fi

status=0
${launcher[@]+"${launcher[@]}"} "${cmd[@]}" || status=$?
if (( status == 143 )) && [[ -n "${SLURM_JOB_ID:-}" ]]; then
    echo "sweep_slurm: task ${task} (${config}, seed ${seed}) stopped before the time limit; requeueing" >&2
    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
fi
exit "$status"
