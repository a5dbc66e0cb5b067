"""The optional MLflow logger: a run with trainer.mlflow on is read back by MLflow's own client
(params, per-step and per-epoch metrics, the graph and figures as artifacts, test.py's
results); off, nothing of
MLflow is written; on without the package, one line before anything is built."""
import json
import signal
import subprocess
import sys
from contextlib import nullcontext

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import test as test_script
import train
from logger.mlflow_writer import RUN_ID_FILE, MlflowWriter, add_evaluation, metric_name
from tests.conftest import REPO, write_config
from tests.test_training import run_dir
from trainer import Trainer
from trainer.checkpoint import load_checkpoint
from utils.errors import run_cli


@pytest.fixture
def mlflow(monkeypatch):
    """MLflow's module, reading (as a user would) the file stores the tests point it at."""
    module = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return module


def read_back(mlflow, store, monkeypatch):
    """Every run in the store, read with mlflow.search_runs (MLflow's client)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.resolve().as_uri())
    experiments = [e.name for e in mlflow.search_experiments()]
    return mlflow.search_runs(experiment_names=experiments, output_format="list")


def test_a_run_and_its_resume_are_one_mlflow_run_with_params_metrics_and_artifacts(
        mlflow, tiny_config, tmp_path, monkeypatch):
    tiny_config["trainer"].update(epochs=1, mlflow=True, log_every_steps=2)
    with monkeypatch.context() as patch:  # stopped (SIGTERM) in the 3rd step of the 1st epoch
        patch.setattr(Trainer, "train_step", stop_in_step(3, Trainer.train_step))
        assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, tiny_config))])) == 0
    (stopped,) = read_back(mlflow, tmp_path / "saved" / "mlruns", monkeypatch)
    assert stopped.info.status == "KILLED"
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    assert run_cli(lambda: train.main(["--resume", str(latest), "--epochs", "2"])) == 0
    assert run_cli(lambda: test_script.main(["--resume", str(latest), "-k", "2", "--limit",
                                             "100", "--no-edge-values"])) == 0

    (run,) = read_back(mlflow, tmp_path / "saved" / "mlruns", monkeypatch)
    assert run.info.status == "FINISHED" and run.info.run_name == latest.parent.name
    config = load_checkpoint(latest)["config"]
    params = run.data.params
    assert params["arch"] == "GraphVAE" and params["trainer.mlflow"] == "True"
    assert float(params["arch.structure_prior.edge_penalty"]) == \
        config["arch"]["args"]["structure_prior"]["edge_penalty"]
    assert params["trainer.epochs"] == "1"  # as the run started (resumed with --epochs 2)
    assert params["arch.encoder_hidden"] == "[64]"
    client = mlflow.MlflowClient()
    history = lambda key: [(m.step, m.value)  # noqa: E731
                           for m in client.get_metric_history(run.info.run_id, key)]
    # Every 2nd step of the run (8 an epoch), counted across the stop and the resume.
    assert [step for step, _ in history("loss/train_step")] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert [step for step, _ in history("grad_norm/train_step")] == [2, 4, 6, 8, 10, 12, 14, 16]
    (log_dir,) = (tmp_path / "saved" / "log").glob("*/*")
    board = EventAccumulator(str(log_dir))
    board.Reload()  # TensorBoard got the same calls
    steps, values = zip(*history("loss/train_step"))
    assert [e.step for e in board.Scalars("loss/train_step")] == list(steps)
    assert [e.value for e in board.Scalars("loss/train_step")] == pytest.approx(values)
    checkpoint_log = load_checkpoint(latest)["history"]
    steps, values = zip(*history("loss/valid"))
    assert steps == (1, 2)
    assert values == pytest.approx([log["val_loss"] for log in checkpoint_log])
    assert {"loss/train", "kl/valid", "edge_prob/z1 to z0", "lr/networks"} <= set(run.data.metrics)

    artifacts = tmp_path / "saved" / "mlruns" / run.info.experiment_id / run.info.run_id / \
        "artifacts"
    listed = {a.path for folder in ("graph", "figures/graph", "figures/samples")
              for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"graph/epoch_0001.json", "graph/epoch_0002.json", "figures/graph/epoch_0002.png",
            "figures/samples/epoch_0002.png"} <= listed
    # test.py's numbers and files, in the same run
    tested = json.loads(latest.with_name("checkpoint-latest-test.json").read_text())
    assert history("test/elbo") == [(2, pytest.approx(tested["elbo"]))]
    assert history("test/log_likelihood") == [(2, pytest.approx(tested["log_likelihood"]))]
    assert {f"test/checkpoint-latest{end}" for end in ("-test.json", "-graph.json", "-graph.png",
                                                       "-graph.dot")} \
        == {a.path for a in client.list_artifacts(run.info.run_id, "test")}
    graph = json.loads((artifacts / "graph" / "epoch_0002.json").read_text())
    assert [e["name"] for e in graph["edges"]] == ["z1->z0", "z2->z0", "z2->z1"]
    assert (artifacts / "figures" / "reconstructions" / "epoch_0001.png").read_bytes()[:4] \
        == b"\x89PNG"


def stop_in_step(n, train_step):
    """train_step, with a SIGTERM to this process in its n-th call."""
    calls = []

    def stopping(self, batch):
        calls.append(1)
        if len(calls) == n:
            signal.raise_signal(signal.SIGTERM)
        return train_step(self, batch)
    return stopping


def test_with_the_switch_off_nothing_of_mlflow_is_written(tiny_config, tmp_path):
    tiny_config["data_loader"]["args"]["subset"] = 128
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, tiny_config))])) == 0
    assert not (tmp_path / "saved" / "mlruns").exists()
    assert not (run_dir(tmp_path / "saved") / RUN_ID_FILE).exists()


def test_the_switch_on_without_mlflow_is_one_line_before_anything_is_built(tiny_config,
                                                                          tmp_path):
    config = write_config(tmp_path, tiny_config)
    without_mlflow = ("import runpy, sys; sys.modules['mlflow'] = None; "
                      "sys.argv = ['train.py', '-c', sys.argv[1], '--set', 'trainer.mlflow=true']; "
                      "runpy.run_path('train.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", without_mlflow, str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("error: trainer.mlflow is true but MLflow is not installed: pip "
                             "install mlflow-skinny==3.17.2 (or set trainer.mlflow=false)\n")
    assert not (tmp_path / "saved").exists()  # no run directory, no training


def test_a_run_directory_naming_no_run_of_the_store_goes_on_in_a_new_one(mlflow, tmp_path,
                                                                        monkeypatch):
    store, folder = tmp_path / "mlruns", tmp_path / "run"
    folder.mkdir()
    first = MlflowWriter(store, "sweep", folder, {"trainer.epochs": 3}, pytest.fail)
    again = MlflowWriter(store, "sweep", folder, {"trainer.epochs": 5}, pytest.fail)
    assert again.run_id == first.run_id  # continued: its params stay as the run began
    (folder / RUN_ID_FILE).write_text("0" * 32)
    said = []
    other = MlflowWriter(store, "sweep", folder, {"trainer.epochs": 5}, said.append)
    assert other.run_id != first.run_id and "names no run" in said[0]
    runs = read_back(mlflow, store, monkeypatch)
    assert sorted(r.data.params["trainer.epochs"] for r in runs) == ["3", "5"]
    copy = tmp_path / "elsewhere" / "copy"  # test.py on a copy of a run: a note, no store
    add_evaluation(copy, {"elbo": -1.0}, 1, [], said.append)
    assert "not logged" in said[-1] and not (copy / "mlruns").exists()


def test_tags_become_mlflow_metric_names():
    assert metric_name("edge_prob/z4->z3") == "edge_prob/z4 to z3"
    assert metric_name("edge_value/z0(t-1)->z1") == "edge_value/z0 t-1 to z1"
    assert metric_name("loss/train_step") == "loss/train_step"


class Sink:
    enabled = True

    def __init__(self):
        self.calls = []

    def add_scalar(self, *args):
        self.calls.append(("add_scalar", *args))

    def run_ended(self, outcome):
        self.calls.append(("run_ended", outcome))


def test_the_writers_pass_each_call_to_the_sinks_that_take_it_and_say_how_the_run_ended():
    from logger.run_writers import RunWriters
    for stop, outcome in ((None, "FINISHED"), ("KILLED", "KILLED"), (ValueError, "FAILED")):
        sink = Sink()
        with pytest.raises(ValueError) if stop is ValueError else nullcontext():
            with RunWriters(sink) as writers:
                writers.add_scalar("loss/train", 1.0, 3)
                writers.add_json("graph", {}, 3)  # this sink does not take it
                if stop is ValueError:
                    raise ValueError
                if stop:
                    writers.outcome = stop
        assert sink.calls == [("add_scalar", "loss/train", 1.0, 3), ("run_ended", outcome)]
    with pytest.raises(AttributeError):  # not a writer's call: not a call that does nothing
        RunWriters(Sink()).log_scalar  # noqa: B018
    with pytest.raises(AttributeError):
        RunWriters(Sink()).__deepcopy__  # noqa: B018


def test_an_experiment_made_by_another_run_meanwhile_is_used_and_a_deleted_one_refused(
        mlflow, tmp_path):
    from logger.mlflow_writer import client_of, experiment_of
    from utils.errors import ConfigError
    client = client_of(tmp_path / "mlruns")
    made = client.create_experiment("GraphVAE_tiny")
    looked_up = []

    class Late:  # the other run makes it between this run's lookup and its create
        def get_experiment_by_name(self, name):
            looked_up.append(name)
            return None if len(looked_up) == 1 else client.get_experiment_by_name(name)

        def create_experiment(self, name):
            return client.create_experiment(name)  # MLflow refuses: it exists

    assert experiment_of(Late(), "GraphVAE_tiny") == made
    client.delete_experiment(made)
    with pytest.raises(ConfigError, match="is deleted; restore it"):
        experiment_of(client, "GraphVAE_tiny")


def test_under_ddp_only_the_main_process_writes_one_mlflow_run(mlflow, tiny_config, tmp_path,
                                                               monkeypatch):
    from tests.test_ddp import ddp_config, run_ddp
    config = ddp_config(tiny_config, tmp_path / "saved", batch_size=32, epochs=1)
    config["data_loader"]["args"]["subset"] = 256  # 4 steps of 2 × 32 examples
    config["trainer"].update(mlflow=True, log_every_steps=1)
    run_ddp(["-c", str(write_config(tmp_path, config))], tmp_path)
    (run,) = read_back(mlflow, tmp_path / "saved" / "mlruns", monkeypatch)
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id,
                                                                      "loss/train_step")]
    assert run.info.status == "FINISHED" and steps == [1, 2, 3, 4]  # each step once
