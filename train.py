"""Train a model: python train.py -c config.json [--set key=value ...] | --resume checkpoint.

Several processes (DDP): torchrun --nproc_per_node=N train.py -c config.json, or on a GPU
machine python train.py --device 0,1 -c config.json, which starts torchrun's workers itself.
"""
import sys

if __name__ == "__main__":  # before the slow imports: a Ctrl-C at any moment is one line
    from utils.signals import exit_on_interrupt
    exit_on_interrupt()

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from contextlib import nullcontext  # noqa: E402
from pathlib import Path  # noqa: E402

from torch.distributed import DistError  # noqa: E402

from cli import add_flags, load_run_config, parser, use_devices  # noqa: E402
from experiment import build_trainer  # noqa: E402
from logger import get_logger, setup_logging  # noqa: E402
from logger.console import model_summary, run_header  # noqa: E402
from logger.mlflow_writer import store_of  # noqa: E402
from utils import distributed, ranks, run_dirs  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.signals import STOP_SIGNALS, handling  # noqa: E402

FLAGS = ("-c", "-r", "-d", "--set", "--epochs", "--lr", "--bs", "--seed", "--name", "--run-id",
         "--save-dir", "--data-dir", "--import")
HELPS = {"-c": "the config to train (JSON); with --resume, replaces the checkpoint's config "
               "(e.g. to fine-tune)",
         "-r": "checkpoint to continue training from (its run goes on in its directory)",
         "-d": "cpu, cuda, cuda:N or N (one GPU), or N,M (one DDP process per GPU, started "
               "through torchrun); indices among the visible GPUs (default: the config's "
               "n_gpu)"}


def main(argv=None):
    args = add_flags(parser(__doc__), *FLAGS, helps=HELPS).parse_args(argv)
    if not distributed.launched_by_torchrun():
        devices = use_devices(args.device)  # GPUs that are not there: one line, here
        if devices is not None and len(devices.indices or ()) > 1:
            return launch_workers(len(devices.indices), sys.argv[1:] if argv is None else argv)
    config, checkpoint = load_run_config(args)
    try:
        train(config, checkpoint, args.resume)
    except Exception as e:
        if not ranks.active() or isinstance(e, UserError):
            raise
        raise rank_failed(e, config) from None
    finally:
        distributed.shutdown()


def train(config, checkpoint=None, resume_path=None, reuse_dir=False):
    """Train the run config describes (resumed from checkpoint); returns the run directory.
    reuse_dir: write into config's run directory even without a checkpoint (reproduce.py's
    fixed directories, where a run killed before its first checkpoint starts again)."""
    # Everything is built (and so checked) before the run directory is created.
    trainer = build_trainer(config, checkpoint, resume_path)
    return fit(trainer, config, resuming=checkpoint is not None or reuse_dir)


def fit(trainer, config, resuming=False):
    """Train a built trainer in config's run directory (opened here: the run holds its lock
    while it trains, rank 0 writes for all); returns the run directory."""
    main = ranks.is_main()
    opened = run_dirs.open_run(config, resuming=resuming)
    with opened if main else nullcontext():
        if main:
            setup_logging(config.log_dir)
        config.save_dir, config.log_dir = distributed.broadcast((config.save_dir, config.log_dir))
        logger = get_logger("train", config["trainer"]["verbosity"] if main else 0)
        logger.info(model_summary(trainer.model))
        logger.info(f"Architecture:\n{trainer.model}", extra={"file_only": True})
        logger.info(run_header(config, trainer.data_loader, trainer.valid_data_loader,
                               trainer.device))
        world_size = ranks.world()[1]
        mlflow = f"; MLflow: {store_of(config.save_dir)}" if config["trainer"]["mlflow"] else ""
        logger.info(f"Run directory: {config.save_dir}  (TensorBoard: {config.log_dir}{mlflow})"
                    + (f"; {world_size} processes" if world_size > 1 else ""))
        trainer.fit()
    if not trainer.stopped:
        best = trainer.checkpoints.best
        logger.info(f"Done. Evaluate with: python test.py --resume "
                    f"{best if best.is_file() else trainer.checkpoints.latest}")
    return config.save_dir


def rank_failed(error, config):
    """A DDP process that failed (the others stop with it): one line naming its rank, where
    its traceback is and how to resume (from the run's last checkpoint)."""
    rank, world_size, _ = ranks.world()
    fd, trace = tempfile.mkstemp(prefix=f"graphvae-rank{rank}-", suffix=".txt")  # O_EXCL
    with os.fdopen(fd, "w") as f:
        f.write("".join(traceback.format_exception(error)))
    latest = Path(config.save_dir) / "checkpoint-latest.safetensors"
    again = f"python train.py --resume {latest}" if latest.is_file() else "start it again"
    first_line = (str(error).splitlines() or [""])[0]
    # A collective whose peer is gone (gloo: "closed by peer"; NCCL: "remote process"): the
    # failing rank's own line says what happened.
    what = "stopped: another rank failed" if isinstance(error, DistError) or any(
        word in first_line for word in ("peer", "remote")) else \
        f"failed ({type(error).__name__}: {first_line[:200]})"
    return UserError(f"rank {rank} of {world_size} {what}, and the run stopped; "
                     f"its traceback is in {trace}; to continue, {again} (with the same "
                     f"--device or torchrun)")


def launch_workers(n_workers, argv):
    """python train.py --device 0,1 ...: one DDP worker per listed GPU, through torchrun; each
    reads the same --device and takes the GPU of its LOCAL_RANK in the list.
    The stop signals (SIGINT, SIGTERM, SIGHUP; SIGUSR1 as SIGTERM, since torchrun would die
    of a SIGUSR1 without passing it on) are passed on to torchrun (which passes them to its
    workers) and this process waits for all of them, so a stop saves the run's checkpoint
    once."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n_workers}", __file__, *argv]
    launcher = subprocess.Popen(command, start_new_session=True)  # signals come from here only
    forward = lambda signum, frame: launcher.send_signal(  # noqa: E731
        signal.SIGTERM if signum == signal.SIGUSR1 else signum)
    with handling(STOP_SIGNALS, forward):
        return launcher.wait()


if __name__ == "__main__":
    sys.exit(run_cli(main))
