"""A training run in MLflow, beside TensorBoard: trainer.mlflow = true, with the optional package
installed (INSTALL).

Offline: a local file store, <save_dir>/mlruns, one MLflow experiment per run name and one
MLflow run per training run. It takes the calls the TensorBoard writer takes
(logger/run_writers.py): each scalar as a metric at its step (the per-step ones by global
step, the per-epoch ones by epoch; tags as metric names, edge_prob/z4->z3 as
'edge_prob/z4 to z3'), each figure and image as a PNG artifact figures/<tag>/epoch_<n>.png,
the learned graph as JSON graph/epoch_<n>.json; the run's settings are its params. A resumed
run continues its MLflow run, whose id its directory keeps (RUN_ID_FILE).
"""
import os
import re
import tempfile
from pathlib import Path

from utils.errors import ConfigError
from utils.files import open_no_link, write_file
from utils.run_dirs import save_dir_of

INSTALL = "pip install mlflow-skinny==3.17.2"
STORE = "mlruns"  # in the save_dir, beside models/ and log/
RUN_ID_FILE = "mlflow-run-id"  # in the run's directory
RUN_ID = re.compile(r"[0-9a-f]{32}")  # what MLflow's stores name a run
PARAMS_PER_CALL = 100  # MLflow takes at most this many params in one batch


def require_mlflow():
    """One line naming the fix when trainer.mlflow is on and the package is not there."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError(f"trainer.mlflow is true but MLflow is not installed: {INSTALL} "
                          f"(or set trainer.mlflow=false)") from None


def store_of(run_dir):
    """The store of the run in run_dir: in the save_dir it belongs to (utils/run_dirs.py)."""
    return save_dir_of(run_dir) / STORE


def metric_name(tag):
    """A TensorBoard tag as an MLflow metric name (letters, digits, _ - . / and spaces)."""
    return " ".join(re.sub(r"[^/\w.\- ]+", " ", tag.replace("->", " to ")).split())


class MlflowWriter:
    """The MLflow run of the training run in run_dir, in the store at store_dir: its own,
    continued, or a new one (then with settings, {flat key: value}, as its params); say: where
    a new one continues a resumed training run, why."""
    enabled = True

    def __init__(self, store_dir, experiment, run_dir, settings, say):
        # MLflow 3 keeps its file store for those who ask for it: an offline store is one.
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        from mlflow.tracking import MlflowClient
        self.store = Path(store_dir).resolve()
        self.client = MlflowClient(tracking_uri=self.store.as_uri())
        self.run_id = self.kept_run(Path(run_dir) / RUN_ID_FILE, say)
        if self.run_id is None:
            self.run_id = self.new_run(experiment, Path(run_dir), settings)

    def kept_run(self, id_file, say):
        """The id in id_file of a run in the store, set running again; None without one."""
        try:
            with os.fdopen(open_no_link(id_file, os.O_RDONLY), encoding="utf-8",
                           errors="replace") as f:
                kept = f.read(64).strip()
        except FileNotFoundError:
            return None
        if RUN_ID.fullmatch(kept) and self.has_run(kept):
            self.client.update_run(kept, status="RUNNING")
            return kept
        say(f"MLflow: {id_file} names no run in {self.store}; this run goes on in a new "
            f"MLflow run")
        return None

    def has_run(self, run_id):
        from mlflow.exceptions import MlflowException
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def new_run(self, experiment, run_dir, settings):
        """A new MLflow run named after run_dir, its id kept there, settings its params."""
        from mlflow.entities import Param
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        run_id = self.client.create_run(experiment_id, run_name=run_dir.name,
                                        tags={"run_dir": str(run_dir)}).info.run_id
        write_file(run_dir / RUN_ID_FILE, run_id)
        params = [Param(key, str(value)) for key, value in settings.items()]
        for start in range(0, len(params), PARAMS_PER_CALL):
            self.client.log_batch(run_id, params=params[start:start + PARAMS_PER_CALL])
        return run_id

    def add_scalar(self, tag, value, step):
        self.client.log_metric(self.run_id, metric_name(tag), float(value), step=int(step))

    def add_figure(self, tag, figure, step):
        from logger.plotting import save_figure  # matplotlib, only when figures are drawn
        self.log_png(tag, step, lambda path: save_figure(figure, path))

    def add_image(self, tag, image, step):
        """image: (C, H, W) in [0, 1], as TensorBoard takes it."""
        from logger.figures import save_images
        self.log_png(tag, step, lambda path: save_images(image[None], path))

    def log_png(self, tag, step, save):
        """A picture drawn by save(path) as figures/<tag>/epoch_<step>.png."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"epoch_{int(step):04d}.png"
            save(path)
            self.client.log_artifact(self.run_id, str(path), f"figures/{tag}")

    def add_json(self, tag, value, step):
        self.client.log_dict(self.run_id, value, f"{tag}/epoch_{int(step):04d}.json")

    def run_ended(self, outcome):
        """outcome: FINISHED, KILLED (stopped on request) or FAILED."""
        self.client.set_terminated(self.run_id, outcome)
