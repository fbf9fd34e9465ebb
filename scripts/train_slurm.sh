#!/usr/bin/env bash
# One selfloop run on several GPUs (and nodes) under SLURM, requeued when pre-empted.
#
#   sbatch scripts/train_slurm.sh configs/hardimagenet.yaml runs/hardimagenet_seed0 [extra CLI args]
#
# Lightning reads the SLURM environment: one task per GPU (--ntasks-per-node = GPUs per node), and
# --trainer.devices / --trainer.num_nodes below must match the allocation. 120 s before the time limit
# SLURM sends USR1 to every task; selfloop stops at the next batch, keeps every finished phase,
# requeues the job (rank 0 calls `scontrol requeue`) and exits. The requeued job runs this same script
# with the same run directory and resumes from its manifest.
#SBATCH --job-name=selfloop
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=USR1@120
#SBATCH --output=slurm-%j.out

set -euo pipefail
config="${1:?usage: sbatch scripts/train_slurm.sh CONFIG RUN_DIR [extra CLI args]}"
run_dir="${2:?usage: sbatch scripts/train_slurm.sh CONFIG RUN_DIR [extra CLI args]}"
shift 2
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
srun python main.py fit --config "$config" --loop.run_dir "$run_dir" \
    --trainer.strategy ddp --trainer.devices "${SLURM_NTASKS_PER_NODE:-1}" --trainer.num_nodes "${SLURM_NNODES:-1}" \
    "$@"
