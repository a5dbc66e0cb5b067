"""A training run in MLflow, beside TensorBoard: trainer.mlflow = true, with the optional package
installed (INSTALL).

Offline: a local file store, <save_dir>/mlruns, one MLflow experiment per run name and one
MLflow run per training run. It takes the calls the TensorBoard writer takes
(logger/run_writers.py): each scalar as a metric at its step (the per-step ones by global
step, the per-epoch ones by epoch; tags as metric names, edge_prob/z4->z3 as
'edge_prob/z4 to z3'), each figure and image as a PNG artifact figures/<tag>/epoch_<n>.png,
the learned graph as JSON graph/epoch_<n>.json; the run's settings are its params. A resumed
run continues its MLflow run, whose id its directory keeps (RUN_ID_FILE), and test.py adds its
results to it (add_evaluation).
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


def client_of(store_dir):
    """MLflow's client of the file store at store_dir."""
    # MLflow 3 keeps its file store for those who ask for it: an offline store is one.
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=Path(store_dir).resolve().as_uri())


def kept_run(client, id_file):
    """The id that id_file keeps, if it names a run of client's store; None otherwise."""
    from mlflow.exceptions import MlflowException
    try:
        with os.fdopen(open_no_link(id_file, os.O_RDONLY), encoding="utf-8",
                       errors="replace") as f:
            kept = f.read(64).strip()
        return kept if RUN_ID.fullmatch(kept) and \
            client.get_run(kept).info.lifecycle_stage == "active" else None
    except (FileNotFoundError, MlflowException):
        return None


class MlflowWriter:
    """The MLflow run of the training run in run_dir, in the store at store_dir: its own,
    continued, or a new one (then with settings, {flat key: value}, as its params); say: where
    a new one continues a resumed training run, why."""
    enabled = True

    def __init__(self, store_dir, experiment, run_dir, settings, say):
        self.client, id_file = client_of(store_dir), Path(run_dir) / RUN_ID_FILE
        self.run_id = kept_run(self.client, id_file)
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            if os.path.lexists(id_file):
                say(f"MLflow: {id_file} names no run in {store_dir}; this run goes on in a new "
                    f"MLflow run")
            self.run_id = self.new_run(experiment, Path(run_dir), settings)

    def new_run(self, experiment, run_dir, settings):
        """A new MLflow run named after run_dir, its id kept there, settings its params."""
        from mlflow.entities import Param
        experiment_id = experiment_of(self.client, experiment)
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


def experiment_of(client, name):
    """The id of the store's experiment called name, made if there is none. Two runs starting
    together may both make it: the loser finds the winner's. A deleted one is refused (MLflow
    would not take runs in it) with the two ways out."""
    from mlflow.exceptions import MlflowException
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name)
        except MlflowException:
            found = client.get_experiment_by_name(name)
    if found.lifecycle_stage == "deleted":
        raise ConfigError(f"the MLflow experiment {name!r} in {client.tracking_uri} is deleted; "
                          f"restore it (MlflowClient.restore_experiment) or give the run another "
                          f"name")
    return found.experiment_id


def add_evaluation(run_dir, metrics, step, files, say):
    """test.py's results of a checkpoint in run_dir, in its training run's MLflow run: metrics,
    {name: value}, as test/<name> at step (the checkpoint's epoch), files as artifacts under
    test/. A run directory that names no MLflow run (a copy elsewhere) gets a note, and no store
    is created."""
    from mlflow.exceptions import MlflowException
    store = store_of(run_dir)
    client = client_of(store) if store.is_dir() else None
    run_id = client and kept_run(client, Path(run_dir) / RUN_ID_FILE)
    if not run_id:
        say(f"MLflow: {run_dir} names no run in {store}; the results are not logged there")
        return
    try:
        for name, value in metrics.items():
            client.log_metric(run_id, f"test/{name}", float(value), step=int(step))
        for path in files:
            client.log_artifact(run_id, str(path), "test")
    except (MlflowException, OSError) as error:  # the results are on disk already
        say(f"MLflow: the results could not be logged in {store} ({error}); they are in the "
            f"files above")
