"""Every script's --help: it exits 0, gives every flag a help text of its own and shows the
defaults; a benchmark run as a file says in one line how to run it."""
import argparse
import importlib.util
import subprocess
import sys

import pytest

import bench.compile_break_even
import bench.ddp_scaling
import bench.edge_gradients
import bench.eval_speed
import bench.searched_graph_vae
import bench.step_path
import bench.structure_family.__main__
import bench.structure_family.diagnosis
import bench.throughput
import bench.versus_pythae
import data_loader.convert_strokes
import reproduce
import sample
import search_graph
import test as test_script
import train
from tests.conftest import REPO
from utils.config import TrainerSettings

BENCHES = ("throughput", "ddp_scaling", "eval_speed", "edge_gradients", "step_path",
           "versus_pythae", "compile_break_even", "searched_graph_vae")


def summarize_main(argv):
    path = REPO / "docs" / "results" / "sequences" / "summarize.py"
    spec = importlib.util.spec_from_file_location("summarize", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


# script: (its main, a phrase its --help must hold, written for that script)
SCRIPTS = {
    "train.py": (train.main, "-r RESUME, --resume RESUME checkpoint to continue training from"),
    "test.py": (test_script.main, "-r RESUME, --resume RESUME checkpoint to evaluate"),
    "sample.py": (sample.main, "-r RESUME, --resume RESUME checkpoint to sample from"),
    "reproduce.py": (reproduce.main, "--seeds SEEDS [SEEDS ...] the runs' seeds"),
    "bench/throughput.py": (bench.throughput.main, "--warmup WARMUP training steps before"),
    "bench/ddp_scaling.py": (bench.ddp_scaling.main, "--procs PROCS [PROCS ...] process counts"),
    "bench/eval_speed.py": (bench.eval_speed.main, "--images IMAGES test images to time"),
    "bench/edge_gradients.py": (bench.edge_gradients.main, "--batches BATCHES training batches"),
    "search_graph.py": (search_graph.main, "--edge-cost EDGE_COST the cost of an edge"),
    "bench/searched_graph_vae.py": (bench.searched_graph_vae.main, "--seeds SEEDS [SEEDS ...] the seeds"),
    "bench/structure_family": (bench.structure_family.__main__.main, "--tables-only train nothing"),
    "bench/structure_family/diagnosis.py": (bench.structure_family.diagnosis.main, "--seed SEED the runs' seed"),
    "bench/step_path.py": (bench.step_path.main, "-c CONFIG, --config CONFIG the run's config"),
    "bench/versus_pythae.py": (bench.versus_pythae.main, "--rounds ROUNDS timed rounds of each"),
    "bench/compile_break_even.py": (bench.compile_break_even.main,
                                    "--rounds ROUNDS timed rounds of each step"),
    "data_loader/convert_strokes.py": (data_loader.convert_strokes.main, "source the strokes.npy"),
    "docs/results/sequences/summarize.py": (summarize_main, "folder the data set's results"),
}


def help_of(main, monkeypatch, capsys):
    """(exit status, the help text with its line breaks undone, the parser) of main(--help)."""
    parsers = []
    original = argparse.ArgumentParser.parse_args

    def recording(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", recording)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    return stop.value.code, " ".join(capsys.readouterr().out.split()), parsers[-1]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0_explains_every_flag_and_shows_defaults(script, monkeypatch, capsys):
    main, phrase = SCRIPTS[script]
    status, text, parser = help_of(main, monkeypatch, capsys)
    assert status == 0
    assert phrase in text, text
    assert all(action.help for action in parser._actions), script
    if script != "data_loader/convert_strokes.py":  # two positional arguments, no default
        assert "(default: " in text, text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_train_flags_show_the_value_a_config_without_the_key_gets(monkeypatch, capsys):
    _, text, _ = help_of(train.main, monkeypatch, capsys)
    assert f"--epochs EPOCHS sets trainer.epochs (default: the config's, else " \
           f"{TrainerSettings.epochs})" in text
    assert f"(default: the config's, else {TrainerSettings.save_dir})" in text
    assert "--seed SEED sets seed (default: the config's, else 0)" in text


def test_sample_flags_say_which_steps_they_count(monkeypatch, capsys):
    _, text, _ = help_of(sample.main, monkeypatch, capsys)
    assert "--traversal-steps TRAVERSAL_STEPS traversal columns" in text
    assert "--sequence-length SEQUENCE_LENGTH steps of each generated sequence" in text
    assert "--steps" not in text and "--length" not in text


@pytest.mark.parametrize("name", BENCHES)
def test_a_benchmark_run_as_a_file_says_in_one_line_how_to_run_it(name):
    result = subprocess.run([sys.executable, f"bench/{name}.py", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("error: run the benchmarks from the repository's root as "
                             f"modules: python -m bench.{name}\n")
