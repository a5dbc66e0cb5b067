"""What a researcher looks at: TensorBoard figures, graph exports, samples, the comparison."""
import json
import re
import shutil

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import reproduce
import sample
import test as test_script
import train
from reproduction import runs
from tests.conftest import DATA_DIR, REPO, write_config
from tests.test_training import run_dir
from trainer.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import run_cli

TINY_ARCH = ["arch.args.encoder_hidden=[32]", "arch.args.feature_dim=16",
             "arch.args.bottom_up_hidden=16", "arch.args.top_down_hidden=16",
             "arch.args.decoder_hidden=[32]", "arch.args.node_dim=2"]


def trained_checkpoint(tiny_config, tmp_path, **trainer):
    tiny_config["trainer"].update(epochs=1, **trainer)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, tiny_config))])) == 0
    return run_dir(tmp_path / "saved") / "model_best.safetensors"


def test_tensorboard_has_one_run_with_grouped_scalars_images_and_hparams(tiny_config, tmp_path):
    checkpoint = trained_checkpoint(tiny_config, tmp_path, tensorboard=True, log_every_steps=5)
    assert run_cli(lambda: train.main(["--resume", str(checkpoint.with_name(
        "checkpoint-latest.safetensors")), "--epochs", "2"])) == 0
    (log_dir,) = (tmp_path / "saved" / "log").glob("*/*")
    assert not [p for p in log_dir.iterdir() if p.is_dir()]  # one run: no sub-runs
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    assert {"graph", "reconstructions", "samples"} <= set(events.Tags()["images"])
    recon = events.Images("reconstructions")[-1]
    assert (recon.width, recon.height) == (2 + 16 * 30, 2 + 2 * 30)  # inputs above, recons below
    scalars = set(events.Tags()["scalars"])
    assert {"loss/train", "loss/valid", "recon/train", "kl/valid", "kl_valid/z0",
            "active_units_valid/z2", "edge_prob/z1->z0", "edge_prob/z2->z0", "edge_prob/z2->z1",
            "schedule/tau", "lr/networks", "loss/train_step", "grad_norm/train_step"} <= scalars
    assert not any(tag.startswith("hparam") for tag in scalars)
    steps = [event.step for event in events.Scalars("loss/train_step")]
    # Every 5th step of the run (8 per epoch, 2 epochs, resumed between them), counted across
    # epochs: a count restarting each epoch would give 5 and 13, or nothing with epochs of
    # fewer than 5 steps.
    assert steps == [5, 10, 15]
    assert [event.step for event in events.Scalars("loss/valid")] == [1, 2]
    plugins = EventAccumulator(str(log_dir))
    plugins.Reload()
    assert plugins.PluginTagToContent("hparams")  # the HParams tab has the run
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    written = [value.tag for path in log_dir.glob("events.out.tfevents.*")
               for event in EventFileLoader(str(path)).Load()
               for value in event.summary.value if value.tag.startswith("_hparams_/experiment")]
    assert written == ["_hparams_/experiment"]  # once, not again when the run resumed
    settings = hparams_of(plugins)
    config = load_checkpoint(checkpoint)["config"]
    assert settings["arch"] == "GraphVAE" and settings["arch.n_nodes"] == 3
    for key in ("structure_prior.edge_penalty", "gate_schedule.anneal_epochs"):
        section, name = key.split(".")
        assert settings[f"arch.{key}"] == config["arch"]["args"][section][name]
    for key in ("kl_warmup_epochs", "free_bits", "log_every_steps"):
        assert settings[f"trainer.{key}"] == config["trainer"][key]
    assert settings["trainer.epochs"] == 1  # as the run started (resumed with --epochs 2)
    assert settings["arch.gate_schedule.freeze_epoch"] == "null"
    assert settings["arch.encoder_hidden"] == "[64]"


def hparams_of(events):
    """{setting: value} a run wrote to the HParams tab."""
    from tensorboard.plugins.hparams import plugin_data_pb2
    for content in events.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            return {name: getattr(value, value.WhichOneof("kind"))
                    for name, value in data.session_start_info.hparams.items()}


def test_a_runs_event_files_read_in_the_order_written_also_within_one_second(
        tmp_path, monkeypatch):
    """SummaryWriter names an event file by the second and a counter of the process: sessions
    of a run (a start, resumes) begun in one second with counters 9, 10 and 11 would read the
    9 last (TensorBoard reads a folder's files in name order)."""
    from types import SimpleNamespace

    from tensorboard.summary.writer import event_file_writer

    from logger import TensorboardWriter
    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(9))
    monkeypatch.setattr(event_file_writer, "time", SimpleNamespace(time=lambda: 1.7e9))
    for session in range(3):
        writer = TensorboardWriter(tmp_path, enabled=True)
        writer.add_scalar("loss/train", float(session), session)
        writer.close()
    assert len(list(tmp_path.iterdir())) == 3
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [event.step for event in events.Scalars("loss/train")] == [0, 1, 2]


def parse_dot_edges(text):
    return {(int(a), int(b)): style for a, b, style in
            re.findall(r'"z(\d+)" -> "z(\d+)" \[[^\]]*style=(\w+)', text)}


def test_test_script_exports_the_graph_and_reports_what_it_evaluated(tiny_config, tmp_path,
                                                                      capsys):
    checkpoint = trained_checkpoint(tiny_config, tmp_path, tensorboard=False)
    with torch.no_grad():  # make the discrete graph non-trivial: drop one edge
        state = load_checkpoint(checkpoint)
        state["model"]["gates.logits"] = torch.tensor([2.0, -2.0, 0.5])
        save_checkpoint(state, checkpoint)
    assert run_cli(lambda: test_script.main(["--resume", str(checkpoint), "-k", "2",
                                             "--limit", "20"])) == 0
    graph = json.loads(checkpoint.with_name("model_best-graph.json").read_text())
    kept = {(e["src"], e["dst"]): e["kept"] for e in graph["edges"]}
    assert kept == {(1, 0): True, (2, 0): False, (2, 1): True}
    assert [round(e["prob"], 3) for e in graph["edges"]] == [0.881, 0.119, 0.622]
    assert graph["edges_dropped"] == 1
    dot = parse_dot_edges(checkpoint.with_name("model_best-graph.dot").read_text())
    assert dot == {edge: "solid" if on else "dashed" for edge, on in kept.items()}
    assert not checkpoint.with_name("graph.json").exists()  # named after its checkpoint
    assert Image.open(checkpoint.with_name("model_best-graph.png")).size[0] > 400

    # tiny_config trains on a subset of 512 images: the test set is still all 10,000, the
    # edge values use validation as training saw it, and the report says both.
    capsys.readouterr()
    checkpoint.with_name("model_best-test.json").unlink()  # K=2 before: never replaced by K=0
    assert run_cli(lambda: test_script.main(["--resume", str(checkpoint), "-k", "0",
                                             "--bs", "1000"])) == 0
    out = capsys.readouterr().out
    results = json.loads(checkpoint.with_name("model_best-test.json").read_text())
    assert results["n_examples"] == results["examples_in_split"] == 10000
    assert results["edge_values_on"] == {"split": "valid", "n_examples": 512,
                                         "examples_in_split": 1000}
    header = out[:out.index("ELBO")]
    assert "(epoch 1)" in header and "ImageDataLoader, fashion_mnist" in header
    assert "test split, 10000 of 10000 examples evaluated" in header
    assert "validation split as training used it, 512 of 1000 examples" in header
    assert checkpoint.with_name("model_best-test.json").read_text().startswith('{\n  "')
    assert f"Results written to {checkpoint.with_name('model_best-test.json')}" in out
    checkpoint.with_name("model_best-test.json").unlink()  # the whole split: kept otherwise
    assert run_cli(lambda: test_script.main(["--resume", str(checkpoint), "-k", "0",
                                             "--limit", "30", "--no-edge-values"])) == 0
    assert "test split, 30 of 10000 examples evaluated" in capsys.readouterr().out


def test_sample_script_writes_samples_and_captioned_traversals(tiny_config, tmp_path,
                                                               monkeypatch):
    checkpoint = trained_checkpoint(tiny_config, tmp_path, tensorboard=False)
    out = tmp_path / "samples.png"
    assert run_cli(lambda: sample.main(["--resume", str(checkpoint), "-n", "16",
                                        "--out", str(out)])) == 0
    assert Image.open(out).size == (2 + 4 * 30, 2 + 4 * 30)
    drawn, save_figure = {}, sample.save_figure

    def save_and_read(figure, path):
        drawn[path.name] = figure_texts(figure)
        save_figure(figure, path)
    monkeypatch.setattr(sample, "save_figure", save_and_read)
    assert run_cli(lambda: sample.main(["--resume", str(checkpoint), "--traverse", "all",
                                        "--rows", "3", "--traversal-steps", "5",
                                        "--out", str(out)])) == 0
    for node in range(3):
        assert Image.open(tmp_path / f"samples_z{node}.png").size[0] > 500
        grid, texts = drawn[f"samples_z{node}.png"]
        assert grid == (2 + 3 * 30, 2 + 5 * 30)  # 3 rows of 5 images
        title, columns, rows = texts
        assert f"GraphVAE ({checkpoint.name}, epoch 1): what node z{node} controls" == title
        assert columns.startswith(f"columns: 5 draws of z{node} from p(z{node}")
        assert rows.startswith("rows: 3 draws of the other nodes")
    assert "p(z2) (it has no parents)" in drawn["samples_z2.png"][1][1]  # the root


def figure_texts(figure):
    """(the shape of a figure's one image, [its title, x label, y label]), each text checked
    to be readable (9 pt or more)."""
    (ax,) = figure.axes
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label]
    assert all(text.get_fontsize() >= 9 for text in texts)
    return ax.get_images()[0].get_array().shape[:2], [text.get_text() for text in texts]


def test_sample_script_writes_beside_its_checkpoint_unless_told(tiny_config, tmp_path,
                                                                 monkeypatch):
    checkpoint = trained_checkpoint(tiny_config, tmp_path, tensorboard=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli(lambda: sample.main(["--resume", str(checkpoint), "-n", "4"])) == 0
    assert run_cli(lambda: sample.main(["--resume", str(checkpoint), "--traverse", "1",
                                        "--rows", "2", "--traversal-steps", "3"])) == 0
    written = {path.name for path in checkpoint.parent.glob(f"{checkpoint.stem}-*.png")}
    assert written == {f"{checkpoint.stem}-samples.png", f"{checkpoint.stem}-traversal-z1.png"}
    assert not any(elsewhere.iterdir())


def test_sample_script_rebuilds_the_model_from_the_shape_its_checkpoint_records(tiny_config,
                                                                               tmp_path):
    """sample.py needs no data and no table of loaders: a model of 16 x 16 images is drawn
    as 16 x 16 images because its checkpoint says input_dim = 256 and image_shape (1, 16, 16);
    a checkpoint written before checkpoints recorded the shape is drawn as a square grey image
    of its width."""
    from model import GraphVAE
    from trainer.checkpoint import save_checkpoint
    checkpoint_path = trained_checkpoint(tiny_config, tmp_path, tensorboard=False)
    checkpoint = load_checkpoint(checkpoint_path)
    assert checkpoint["input_dim"] == 784 and checkpoint["image_shape"] == [1, 28, 28]
    args = checkpoint["config"]["arch"]["args"]
    small = GraphVAE(input_dim=256, **args)
    shape = (1, 16, 16)
    assert sample.as_images(small, small.sample_prior(2)[0], shape).shape == (2, 1, 16, 16)
    out = tmp_path / "small.png"
    for recorded in ([1, 16, 16], None):
        checkpoint.update(input_dim=256, image_shape=recorded, model=small.state_dict())
        save_checkpoint(checkpoint, checkpoint_path)
        assert run_cli(lambda: sample.main(["--resume", str(checkpoint_path), "-n", "4",
                                            "--out", str(out)])) == 0
        assert Image.open(out).size == (2 + 2 * 18, 2 + 2 * 18)


def test_a_traversal_changes_only_the_chosen_node():
    from model import GraphVAE
    model = GraphVAE(input_dim=16, n_nodes=3, node_dim=2, encoder_hidden=[8], feature_dim=8,
                     bottom_up_hidden=8, top_down_hidden=8, decoder_hidden=[8]).eval()
    torch.manual_seed(0)
    _, base = model.sample_prior(2)
    fixed = base.repeat_interleave(4, dim=0)
    _, z = model.sample_prior(8, node_overrides={0: fixed[:, 0], 2: fixed[:, 2]})
    assert torch.equal(z[:, 0], fixed[:, 0]) and torch.equal(z[:, 2], fixed[:, 2])
    assert not torch.equal(z[:, 1], fixed[:, 1])


def test_reproduce_trains_evaluates_tabulates_and_never_trains_a_finished_run_again(
        tmp_path, capsys):
    argv = ["--epochs", "1", "--seeds", "0", "1", "-k", "3", "--test-limit", "40",
            "--out", str(tmp_path / "out"), "--results", str(tmp_path / "results"),
            "--set", f"data_loader.args.data_dir={DATA_DIR}", "data_loader.args.subset=256",
            "data_loader.args.validation_size=500", *TINY_ARCH, "--jobs", "2"]
    assert run_cli(lambda: reproduce.main(argv)) == 0
    results = tmp_path / "results"
    table = (results / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    names = [r.split("|")[1].strip() for r in rows]
    assert names[2:7] == ["VAE", "Ladder VAE", "FC-VAE", "Gate-noise control", "GraphVAE"]
    summary = json.loads((results / "results.json").read_text())
    assert summary["rows"][0]["seeds"] == 2 and len(summary["edges"]) == 10
    run = json.loads((results / "runs" / "graph_vae_seed1.json").read_text())
    assert run["test"]["n_examples"] == 40 and run["epochs"] == 1
    assert run["settings"]["overrides"] and "per_example" not in run["test"]
    assert Image.open(results / "curves.png").size[0] > 400
    assert (results / "graph_seed0.png").is_file()
    # Without any checkpoint, the table is rebuilt from the results files alone.
    shutil.rmtree(tmp_path / "out")
    capsys.readouterr()
    assert run_cli(lambda: reproduce.main(argv)) == 0
    assert "to train" not in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    assert (results / "results.md").read_text() == table
    # Other settings never mix with these results.
    assert run_cli(lambda: reproduce.main(argv[:1] + ["2"] + argv[2:])) == 2
    assert "other settings" in capsys.readouterr().err


def reproduce_args(tmp_path, *extra):
    args = reproduce.parse_args(["--epochs", "1", "--seeds", "0", "-k", "2", "--test-limit", "20",
                                 "--models", "graph_vae", "--out", str(tmp_path / "out"),
                                 "--results", str(tmp_path / "results"), "--set",
                                 f"data_loader.args.data_dir={DATA_DIR}", "data_loader.args.subset=128",
                                 "data_loader.args.validation_size=500", *TINY_ARCH, *extra])
    args.out = str(tmp_path / "out")
    return args


def test_a_run_killed_before_its_first_checkpoint_trains_again_in_its_directory(tmp_path):
    args = reproduce_args(tmp_path)
    run_dir = tmp_path / "out" / "models" / "GraphVAE_fashion_mnist" / "seed0"
    run_dir.mkdir(parents=True)  # what a kill during the first epoch leaves
    runs.run_one("graph_vae", 0, args, threads=1)
    assert (run_dir / "checkpoint-latest.safetensors").is_file() and not run_dir.with_name("seed0_1").exists()
    assert (tmp_path / "results" / "runs" / "graph_vae_seed0.json").is_file()


def test_a_stopped_run_writes_no_results(tmp_path, monkeypatch):
    from tests.test_reliability import stop_at_step
    from utils.errors import UserError
    stop_at_step(monkeypatch, 1)
    with pytest.raises(UserError, match="stopped at epoch 0; run reproduce.py again"):
        runs.run_one("graph_vae", 0, reproduce_args(tmp_path), threads=1)
    assert not (tmp_path / "results").exists()


def test_sequence_summary_pairs_each_setting_with_no_counter_measure_by_seed(tmp_path):
    """docs/results/sequences/summarize.py: mean ± SD over seeds and the change in log p(x)
    from the run without a counter-measure, paired by seed, ± its SE over seeds."""
    import importlib.util
    path = REPO / "docs" / "results" / "sequences" / "summarize.py"
    spec = importlib.util.spec_from_file_location("summarize", path)
    summarize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize)
    log_likelihoods = {"none": [-10.0, -11.0], "warmup10": [-10.5, -11.0], "freebits": [-9.0, -9.0]}
    for setting, values in log_likelihoods.items():
        (tmp_path / setting / "runs").mkdir(parents=True)
        for seed, value in enumerate(values):
            test = {"log_likelihood": value, "elbo": value - 0.5, "kl": 0.25 * (seed + 1),
                    "kl_per_node": [0.25 * (seed + 1)], "active_units": [2 * seed]}
            (tmp_path / setting / "runs" / f"vrnn_seed{seed}.json").write_text(
                json.dumps({"test": test}))
    assert summarize.row(tmp_path, "none", "vrnn") == (
        "| none | VRNN | -10.50 ± 0.71 | — | -11.00 ± 0.71 | 0.375 ± 0.177 | 1 |")
    # Paired changes: warm-up (-0.5, 0.0) -> -0.25 ± 0.25; free bits (+1, +2) -> +1.50 ± 0.50.
    assert "| -0.25 ± 0.25 |" in summarize.row(tmp_path, "warmup10", "vrnn")
    assert "| +1.50 ± 0.50 |" in summarize.row(tmp_path, "freebits", "vrnn")


@pytest.fixture(scope="module")
def recurrent_checkpoint(tmp_path_factory):
    """A RecurrentGraphVAE (3 nodes) trained one epoch on handwriting, with TensorBoard on;
    its graph set to drop z2->z0 within a step and 4 of the 9 edges from step t-1."""
    tmp_path = tmp_path_factory.mktemp("recurrent")
    config = json.loads((REPO / "configs" / "recurrent_graph_vae_strokes.json").read_text())
    config.update(n_gpu=0)
    config["arch"]["args"].update(rnn_hidden=16, hidden=16, feature_dim=8, node_dim=2)
    config["data_loader"]["args"] = {"data_dir": str(DATA_DIR), "subsample": 25}
    config["trainer"].update(epochs=1, save_dir=str(tmp_path / "saved"), tensorboard=True,
                             tbptt_steps=20, edge_values=False)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, config))])) == 0
    checkpoint = run_dir(tmp_path / "saved") / "model_best.safetensors"
    state = load_checkpoint(checkpoint)
    state["model"]["gates.logits"] = torch.tensor([2.0, -2.0, 0.5])
    state["model"]["cross_gates.logits"] = torch.tensor([1.0, -1.0] * 4 + [3.0])
    save_checkpoint(state, checkpoint)
    return checkpoint


def test_test_script_counts_exports_and_draws_every_edge_of_the_recurrent_model(
        recurrent_checkpoint, capsys):
    n, dropped = 3, 1 + 4
    assert run_cli(lambda: test_script.main(["--resume", str(recurrent_checkpoint), "-k", "0",
                                             "--limit", "5", "--no-edge-values"])) == 0
    out = capsys.readouterr().out
    total = n * (n - 1) // 2 + n * n  # within a step, and from every node of step t-1
    assert f"{dropped} of {total} edges dropped (3 within a step, 9 from step t-1)" in out
    graph = json.loads(recurrent_checkpoint.with_name("model_best-graph.json").read_text())
    assert len(graph["edges"]) + len(graph["cross_edges"]) == total
    dot = recurrent_checkpoint.with_name("model_best-graph.dot").read_text()
    edges = re.findall(r'"(z\d(?:\(t-1\))?)" -> "(z\d)" \[[^\]]*style=(\w+)', dot)
    assert len(edges) == total and sum(style == "dashed" for *_, style in edges) == dropped
    picture = recurrent_checkpoint.with_name("model_best-graph.png")
    assert Image.open(picture).size[0] > 500 and picture.name in out
    assert "dot -T" not in out  # Graphviz is no dependency


def test_tensorboard_shows_a_sequence_models_data_and_generated_sequences(recurrent_checkpoint):
    (log_dir,) = (recurrent_checkpoint.parents[3] / "log").glob("*/*")
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    assert {"graph", "sequences/validation", "sequences/reconstructed",
            "sequences/generated"} <= set(events.Tags()["images"])
