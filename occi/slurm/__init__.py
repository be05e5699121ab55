"""Running the pipeline as SLURM jobs: cluster profiles, rendered sbatch scripts, submit, status."""
