"""What the launcher's tests run as jobs (tests/test_launcher.py): a job imports the function
it runs from its module, by that module's name."""
import os
import time
from pathlib import Path

from utils.errors import UserError


def note(folder, name, fails=False, after=None):
    """Write <name>.started (with this job's visible GPUs); once a file matches the pattern
    `after` in folder (if given), fail or finish."""
    Path(folder, f"{name}.started").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    while after and not any(Path(folder).glob(after)):
        time.sleep(0.05)
    if fails:
        raise RuntimeError("diverged")
    Path(folder, f"{name}.finished").write_text("")


def train_until_stopped(folder, name):
    """What a run does with a stop: the trainer's stop requests, a save, then the stop."""
    from utils.signals import StopRequests
    with StopRequests(print, lambda: False).installed() as stops:
        Path(folder, f"{name}.started").write_text("")
        while not stops.requested:
            time.sleep(0.05)
    Path(folder, f"{name}.saved").write_text("")
    raise UserError(f"{name} stopped")
