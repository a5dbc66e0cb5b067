"""The runs of a sweep (reproduce.py's table: a run per model, seed and sweep value) launched
through submitit: a job per run, on this machine (its local executor) or on a Slurm cluster.

settings.py reads the launcher's flags into the settings of a launch (one line for a bad one);
run.py is a run as a job (the callable each job calls, and what a stop does in it); launch.py
submits the runs and waits for them; job.py is a run's job (its files, its record, whether it
runs, how it ended: --status).
"""
import os
import signal

# A job's warning before its time limit (`#SBATCH --signal=USR1@120`), the signal the trainer
# saves on as well. submitit reads its choice from the environment when it is imported, here
# and in the jobs (which inherit this environment), so it is set before any import of it.
WARNING = signal.SIGUSR1
os.environ["SUBMITIT_PREEMPT_SIGNAL"] = WARNING.name[len("SIG"):]
