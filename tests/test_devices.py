"""--device as users type it, GPUs counted among the visible ones, one process per GPU: the
device paths, checked on the CPU with torch.cuda's counts stood in for (the real GPU runs are
in tests/test_cuda.py)."""
import os

import pytest
import torch

import sample
import test as test_script
import train
from cli import load_run_config, parse_device, use_devices
from tests.conftest import expect_one_line_error, write_config
from utils import distributed
from utils.errors import ConfigError, run_cli


@pytest.fixture(autouse=True)
def _forget_the_device_choice():
    yield
    distributed.use_all_gpus()


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine shows n GPUs (nothing touches a real one)."""
    def show(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    return show


@pytest.mark.parametrize("text, gpu, indices", [
    ("cpu", False, None), ("CPU", False, None), ("cuda", True, None), ("cuda:0", True, (0,)),
    ("cuda:3", True, (3,)), ("2", True, (2,)), ("0,1", True, (0, 1)), ("1, 3", True, (1, 3))])
def test_every_form_users_type_is_read_the_same_everywhere(text, gpu, indices):
    devices = parse_device(text)
    assert (devices.gpu, devices.indices) == (gpu, indices)
    assert devices.n_gpu == (0 if not gpu else len(indices or (None,)))


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "-1", "0,,1", "", "0,0", "cuda0"])
def test_a_device_that_is_no_form_is_one_line(text):
    with pytest.raises(ConfigError) as error:
        parse_device(text)
    assert "\n" not in str(error.value) and "--device" in str(error.value)


def test_indices_are_within_the_schedulers_visible_gpus_which_stay_as_they_were(
        gpus, monkeypatch):
    """A scheduler gave this job physical GPUs 4 and 5: --device 1 is the second of them
    (physical 5), and CUDA_VISIBLE_DEVICES is not overwritten with '1'."""
    gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    use_devices("1")
    assert distributed.local_device(True) == torch.device("cuda", 1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5"


def test_the_config_gets_n_gpu_from_the_device_and_cuda_means_a_gpu(gpus, tmp_path, tiny_config):
    gpus(2)
    path = str(write_config(tmp_path, tiny_config))
    for text, n_gpu in (("cuda", 1), ("cuda:1", 1), ("0,1", 2), ("cpu", 0)):
        args = train.add_flags(train.parser(""), "-c", "-d").parse_args(["-c", path, "-d", text])
        config, _ = load_run_config(args)
        assert config["n_gpu"] == n_gpu, text
    assert os.environ.get("CUDA_VISIBLE_DEVICES") is None or "cuda" not in os.environ[
        "CUDA_VISIBLE_DEVICES"]


@pytest.mark.parametrize("text", ["cuda", "cuda:0", "0"])
def test_a_gpu_asked_for_on_a_machine_without_one_is_one_line_not_a_cpu_run(
        text, gpus, tiny_config, tmp_path, capsys):
    gpus(0)
    expect_one_line_error(["-c", str(write_config(tmp_path, tiny_config)), "--device", text],
                          capsys, "no GPU is visible", "--device cpu")


def test_a_gpu_that_does_not_exist_is_one_line(gpus, tiny_config, tmp_path, capsys, monkeypatch):
    gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    expect_one_line_error(["-c", str(write_config(tmp_path, tiny_config)), "--device", "cuda:2"],
                          capsys, "there is no GPU 2", "2 GPU(s) visible",
                          "CUDA_VISIBLE_DEVICES=4,5", "0..1")


def test_more_processes_than_gpus_is_one_line_not_two_ranks_on_one_gpu(gpus, monkeypatch):
    gpus(1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="2 processes on this machine but 1 GPU") as error:
        distributed.local_device(True)
    assert "--nproc_per_node=1" in str(error.value) and "\n" not in str(error.value)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.local_device(True) == torch.device("cuda", 0)
    assert distributed.local_device(False) == torch.device("cpu")


def test_a_device_list_gives_each_local_rank_its_own_gpu_and_no_more(gpus, monkeypatch):
    gpus(4)
    use_devices("3,1")
    for rank, index in ((0, 3), (1, 1)):
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        assert distributed.local_device(True) == torch.device("cuda", index)
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ConfigError, match="--device lists 2"):
        distributed.local_device(True)


def test_the_process_group_is_bound_to_the_local_gpu(gpus, monkeypatch):
    """NCCL gets device_id (it would otherwise guess the GPU from the global rank, wrong on a
    machine running fewer processes than it has GPUs) and the GPU is the current one."""
    import torch.distributed as dist
    gpus(8)
    monkeypatch.setenv("WORLD_SIZE", "4")  # 2 machines x 2 processes: this is global rank 3
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group",
                        lambda backend, **kwargs: calls.append((backend, kwargs)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(device))
    distributed.init(gpu=True)
    assert calls == [torch.device("cuda", 1), ("nccl", {"device_id": torch.device("cuda", 1)})]
    calls.clear()
    distributed.init(gpu=False)
    assert calls == [("gloo", {})]


def test_n_gpu_above_one_in_one_process_is_one_line_not_one_gpu(tiny_config, tmp_path, capsys):
    expect_one_line_error(["-c", str(write_config(tmp_path, tiny_config)), "--set", "n_gpu=2"],
                          capsys, "n_gpu is 2", "--device 0,1", "--nproc_per_node=2")


def test_a_device_list_starts_one_worker_per_gpu_and_keeps_the_visible_gpus(
        gpus, monkeypatch, tiny_config, tmp_path):
    gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    started = []

    class Launcher:
        def __init__(self, command, **kwargs):
            started.append((command, dict(os.environ)))

        def wait(self):
            return 0

    monkeypatch.setattr(train.subprocess, "Popen", Launcher)
    argv = ["-c", str(write_config(tmp_path, tiny_config)), "--device", "0,1"]
    assert run_cli(lambda: train.main(argv)) == 0
    (command, env), = started
    assert "--nproc_per_node=2" in command and command[-len(argv):] == argv
    assert env["CUDA_VISIBLE_DEVICES"] == "4,5"


def test_a_device_list_without_those_gpus_starts_nothing(gpus, tiny_config, tmp_path, capsys):
    gpus(1)
    expect_one_line_error(["-c", str(write_config(tmp_path, tiny_config)), "--device", "0,1"],
                          capsys, "there is no GPU 1")


@pytest.mark.parametrize("script", [test_script, sample])
def test_evaluation_and_sampling_take_one_device_and_use_it(script, gpus, monkeypatch, capsys):
    gpus(2)
    assert run_cli(lambda: script.main(["--resume", "x.safetensors", "--device", "0,1"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "one device" in err and err.count("\n") == 1, err


def test_sample_draws_on_the_configured_device(monkeypatch, tiny_config):
    """sample.py builds the model on prepare_device's device (it used to stay on the CPU)."""
    class Reached(Exception):
        pass

    def capture(config, checkpoint, path, device="cpu"):
        seen.append(device)
        raise Reached

    seen = []
    monkeypatch.setattr(sample, "load_run_config",
                        lambda args, **kwargs: (tiny_config | {"seed": 0}, {}))
    monkeypatch.setattr(sample, "prepare_device", lambda config: torch.device("cuda", 1))
    monkeypatch.setattr(sample, "load_model", capture)
    with pytest.raises(Reached):
        sample.main(["--resume", "x.safetensors", "--device", "1"])
    assert seen == [torch.device("cuda", 1)]


def test_reproduce_gives_each_run_a_gpu_of_its_own(gpus, monkeypatch):
    """--device chooses the GPUs the runs share, one run per GPU at a time; each run's job
    sees only its own (before, every run trained on cuda:0)."""
    import reproduce
    from launcher import settings
    gpus(2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert reproduce.job_gpus(reproduce.parse_args([])) == [0, 1]
    assert reproduce.job_gpus(reproduce.parse_args(["--device", "1"])) == [1]
    assert reproduce.job_gpus(reproduce.parse_args(["--device", "cpu"])) == []
    assert settings.local(None, [0, 1]) == settings.local(2, [0, 1])
    assert settings.local(None, [0, 1]).gpus == ("0", "1")
    assert settings.local(None, [1]).gpus == ("1",)


def test_under_torchrun_a_missing_resume_checkpoint_says_every_machine_needs_it(
        monkeypatch, tmp_path):
    """Every rank reads --resume itself (each takes its own random state from it): on a
    machine without the file the rank says so in one line, naming what the file system must
    provide (docs/scaling_out.md)."""
    from trainer.checkpoint import load_checkpoint
    from utils.errors import CheckpointError
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(CheckpointError, match="rank 5.*at this path on every machine"):
        load_checkpoint(tmp_path / "checkpoint-latest.safetensors")


# -- process-wide GPU settings ---------------------------------------------------------------
def test_the_cublas_workspace_is_fixed_when_the_api_is_imported_before_any_gpu_work():
    """ATen reads CUBLAS_WORKSPACE_CONFIG once, at the process's first GPU matmul: a
    deterministic run built after earlier GPU work (a notebook, pytest) needs it set before."""
    import subprocess
    import sys

    from tests.conftest import REPO
    code = ("import os, torch, experiment; "
            "print(os.environ.get('CUBLAS_WORKSPACE_CONFIG'), torch.cuda.is_initialized())")
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, timeout=120,
                            capture_output=True, text=True)
    assert result.stdout.split() == [":4096:8", "False"], result.stderr


def test_a_run_built_after_a_deterministic_one_is_not_deterministic(tiny_config):
    from experiment import seed_everything
    from utils.config import ConfigParser
    was = torch.are_deterministic_algorithms_enabled()
    try:
        for deterministic in (True, False, True):
            tiny_config["trainer"]["deterministic"] = deterministic
            seed_everything(ConfigParser(tiny_config))
            assert torch.are_deterministic_algorithms_enabled() == deterministic
    finally:
        torch.use_deterministic_algorithms(was)


def test_the_tests_tiny_config_trains_on_the_cpu_also_where_a_gpu_is_visible(tiny_config,
                                                                             gpus):
    from experiment import prepare_device
    from utils.config import ConfigParser
    gpus(1)
    assert prepare_device(ConfigParser(tiny_config)) == torch.device("cpu")
