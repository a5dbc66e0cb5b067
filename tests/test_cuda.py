"""On a GPU, what users run there, end to end (every test skips without a GPU; on a GPU
machine bash bench/gpu_check.sh runs this file first, within 270 s and 150 s a test: each
wait here is shorter).

One GPU: train -> kill -> resume bit for bit -> test.py -> sample.py; a training step with
no host sync in it; bf16 autocast, torch.compile and CUDA graphs steps; the recurrent state in
fp32 under CUDA's own autocast; the IS log-likelihood at K = 5000 on 1,000 test images.
Two GPUs or more: NCCL DDP matching one process, SyncBatchNorm, resume under DDP, and
train.py --device 0,1 starting a worker per GPU.
"""
import math
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

import sample
import test as test_script
import train
from tests.conftest import REPO, write_config
from tests.test_ddp import straight_and_resumed
from tests.test_training import logged, run_dir
from trainer.checkpoint import load_checkpoint
from utils.errors import run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")


def train_cli(argv):
    return run_cli(lambda: train.main(argv))


@pytest.fixture
def gpu_config(tiny_config):
    """The tiny GraphVAE on GPU 0, deterministic kernels, 8 batches an epoch."""
    tiny_config["trainer"].update(deterministic=True, tensorboard=False, epochs=2)
    tiny_config["n_gpu"] = 1
    return tiny_config


def wait_for_checkpoint_inside_an_epoch(save_dir, process, seconds=90):
    """Wait until the run has written a checkpoint inside an epoch; return its path."""
    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        for latest in save_dir.glob("models/*/*/checkpoint-latest.safetensors"):
            try:
                if load_checkpoint(latest)["batches_done"] > 0:
                    return latest
            except Exception:  # being replaced at this moment: look again
                pass
        time.sleep(0.05)
    raise AssertionError("no checkpoint inside an epoch appeared")


def test_train_kill_resume_exactly_then_evaluate_and_sample(gpu_config, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    gpu_config["trainer"]["save_dir"] = str(straight)
    assert train_cli(["-c", str(write_config(tmp_path, gpu_config, "a.json"))]) == 0

    gpu_config["trainer"].update(save_dir=str(killed), checkpoint_every_steps=3)
    gpu_config["data_loader"]["args"]["subset"] = 512
    process = subprocess.Popen([sys.executable, "train.py", "-c",
                                str(write_config(tmp_path, gpu_config, "b.json"))], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        latest = wait_for_checkpoint_inside_an_epoch(killed, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert train_cli(["--resume", str(latest)]) == 0
    a = load_checkpoint(run_dir(straight) / "checkpoint-latest.safetensors")
    b = load_checkpoint(latest)
    assert b["epoch"] == 2 and "cuda" in b["rng"][0]  # trained on the GPU
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key  # bit for bit

    assert run_cli(lambda: test_script.main(["--resume", str(latest), "-k", "20",
                                             "--limit", "300", "--device", "0"])) == 0
    assert latest.with_name("checkpoint-latest-test.json").is_file()
    out = tmp_path / "samples.png"
    assert run_cli(lambda: sample.main(["--resume", str(latest), "-n", "16", "--out",
                                        str(out), "--device", "cuda:0"])) == 0
    assert out.is_file()


def trainer_on_the_gpu(config_dict, **trainer_settings):
    from experiment import build_trainer
    from utils.config import ConfigParser
    config_dict["trainer"].update(trainer_settings)
    trainer = build_trainer(ConfigParser(config_dict), validate=False)
    assert trainer.device.type == "cuda"
    trainer.begin_epoch(1)
    return trainer


def some_steps(trainer, n, batches=None):
    batches = batches or iter(trainer.data_loader)
    return [trainer.train_step(next(batches)) for _ in range(n)]


def test_batches_are_made_on_the_device_and_a_step_waits_for_nothing(gpu_config):
    """No host sync inside a training step (the loader's next batch, forward, backward, the
    non-finite guard, Adam): torch.cuda's sync debug mode raises on any. (An epoch's first
    batch copies the epoch's order to the GPU, once: it is taken before.)"""
    gpu_config["trainer"]["deterministic"] = False
    trainer = trainer_on_the_gpu(gpu_config)
    batches = iter(trainer.data_loader)
    some_steps(trainer, 3, batches)  # first steps create the optimizer state and caches
    assert next(batches).device.type == "cuda"
    torch.cuda.set_sync_debug_mode("error")
    try:
        some_steps(trainer, 3, batches)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    trainer.count_skipped_steps(1)
    assert trainer.nonfinite_steps == 0


@pytest.mark.parametrize("settings", [{"amp": True}, {"compile": True},
                                      {"compile_mode": "reduce-overhead"},
                                      {"compile": True, "amp": True}],
                         ids=["bf16", "compiled", "cuda_graphs", "compiled_bf16"])
def test_fast_steps_train_on_the_gpu(gpu_config, settings):
    gpu_config["trainer"]["deterministic"] = False
    torch._dynamo.reset()  # every trainer compiles the same method: start each afresh
    torch._dynamo.utils.counters.clear()
    trainer = trainer_on_the_gpu(gpu_config, **settings)
    results = some_steps(trainer, 6)
    losses = [terms["loss"].item() for chunks in results for terms, _ in chunks]
    assert all(math.isfinite(loss) for loss in losses), losses
    trainer.count_skipped_steps(1)
    assert trainer.nonfinite_steps == 0
    if "compile_mode" in settings:
        assert trainer.cuda_graphs
        skips = torch._dynamo.utils.counters["inductor"]["cudagraph_skips"]
        assert not skips, "the step was not captured as CUDA graphs"


def test_the_recurrent_state_stays_fp32_under_cuda_autocast():
    from model import RecurrentGraphVAE
    model = RecurrentGraphVAE(input_dim=3, n_nodes=2, node_dim=2, rnn_hidden=8, hidden=8,
                              feature_dim=4).cuda()
    batch = {"x": torch.randn(4, 5, 3, device="cuda"),
             "mask": torch.ones(4, 5, dtype=torch.bool, device="cuda")}
    batch["x"][:, :, 0] = 0.0
    with torch.autocast("cuda", dtype=torch.bfloat16):
        h, z = model(batch)["state"]
    assert h.dtype == z.dtype == torch.float32


def test_importance_sampled_log_likelihood_at_k_5000_on_1000_images():
    """The paper's K on the default (paper-sized) model: finite, above the ELBO, and fast."""
    from experiment import build_loader, build_model
    from tests.conftest import DATA_DIR
    from trainer.evaluation import evaluate
    from utils.config import ConfigParser, load_json
    config = load_json(REPO / "config.json")
    config.setdefault("data_loader", {}).setdefault("args", {})["data_dir"] = str(DATA_DIR)
    config = ConfigParser(config)
    device = torch.device("cuda", 0)
    loader = build_loader(config, "test", batch_size=100, subset=1000).to(device)
    model = build_model(config, loader.input_dim, device).eval()
    start = time.perf_counter()
    results = evaluate(model, loader, device, n_samples=5000)
    seconds = time.perf_counter() - start
    assert results["n_examples"] == 1000
    assert math.isfinite(results["log_likelihood"])
    assert results["log_likelihood"] >= -results["loss"] - 1.0
    assert seconds < 120, f"{seconds:.0f} s for 1,000 images at K = 5000"


# -- two GPUs or more: NCCL -----------------------------------------------------------------
def nccl_config(tiny_config, save_dir, batch_size, epochs=2):
    from tests.test_ddp import ddp_config
    config = ddp_config(tiny_config, save_dir, batch_size, epochs)
    config["n_gpu"] = None  # a GPU per process: NCCL
    return config


def record_batchnorm_worker(rank, argv, out_dir, port):
    """A rank that trains, then saves what kind of BatchNorm it had and its statistics."""
    from tests.conftest import become_rank
    from trainer import Trainer
    become_rank(rank, port)
    original = Trainer.fit

    def train_and_record(self):
        original(self)
        norms = [m for m in self.model.modules() if "BatchNorm" in type(m).__name__]
        torch.save({"kinds": sorted({type(m).__name__ for m in norms}),
                    "means": [m.running_mean.cpu() for m in norms],
                    "logits": self.model.gates.logits.detach().cpu()}, f"{out_dir}/bn{rank}.pt")

    Trainer.fit = train_and_record
    if run_cli(lambda: train.main(argv)) != 0:
        raise SystemExit(1)


def run_nccl(argv, out_dir):
    from tests.test_ddp import free_port
    mp.spawn(record_batchnorm_worker, args=(argv, str(out_dir), free_port()), nprocs=2,
             join=True)


@two_gpus
def test_nccl_ddp_matches_one_process_with_synchronised_batchnorm(tiny_config, tmp_path):
    one = nccl_config(tiny_config, tmp_path / "one", batch_size=64)
    one["n_gpu"] = 1
    assert train_cli(["-c", str(write_config(tmp_path, one, "one.json"))]) == 0
    two = nccl_config(tiny_config, tmp_path / "two", batch_size=32)
    run_nccl(["-c", str(write_config(tmp_path, two, "two.json"))], tmp_path)
    ranks = [torch.load(tmp_path / f"bn{r}.pt") for r in (0, 1)]
    assert ranks[0]["kinds"] == ["SyncBatchNorm"]
    assert torch.equal(ranks[0]["logits"], ranks[1]["logits"])
    for a, b in zip(ranks[0]["means"], ranks[1]["means"]):  # the same global statistics
        assert torch.allclose(a, b, atol=1e-5)
    for key in ("loss", "val_loss"):
        a, b = logged(tmp_path / "one", key), logged(tmp_path / "two", key)
        assert len(a) == len(b) == 2
        assert all(abs(x - y) / abs(x) < 0.01 for x, y in zip(a, b)), (key, a, b)


@two_gpus
def test_resume_under_nccl_ddp_continues_exactly(tiny_config, tmp_path):
    a, b = straight_and_resumed(run_nccl, nccl_config, tiny_config, tmp_path)
    assert b["epoch"] == 2 and len(b["rng"]) == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


@two_gpus
def test_a_device_list_starts_one_worker_per_gpu(tiny_config, tmp_path):
    tiny_config["trainer"].update(epochs=1, tensorboard=False, save_dir=str(tmp_path / "saved"))
    result = subprocess.run([sys.executable, "train.py", "--device", "0,1", "-c",
                             str(write_config(tmp_path, tiny_config))], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    (log,) = (tmp_path / "saved" / "log").glob("*/*/info.log")
    assert "; 2 processes" in log.read_text()
