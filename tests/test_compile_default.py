"""trainer.compile: "auto" (the default) compiles a run long enough to repay the compile and
says why in the log; true and false force it; DDP stays eager unless forced."""
import pytest
import torch

from experiment import build_trainer
from trainer import compiling
from utils.config import ConfigParser
from utils.overrides import apply_overrides
from utils.errors import ConfigError


@pytest.fixture
def compiles(monkeypatch):
    """The functions torch.compile was asked to compile (none is compiled: tests stay fast)."""
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda function, **options: compiled.append(function)
                        or function)
    return compiled


def trainer_for(config, epochs, compile_setting=None):
    config["trainer"]["epochs"] = epochs
    if compile_setting is not None:
        config["trainer"]["compile"] = compile_setting
    return build_trainer(ConfigParser(config), validate=False)


def step_note(trainer):
    return next(note for _, note in trainer.notes if note.startswith("Training step: "))


def test_auto_compiles_only_when_the_planned_steps_exceed_the_break_even(
        tiny_config, compiles, monkeypatch):
    batches = len(trainer_for(tiny_config, 1).data_loader)
    monkeypatch.setitem(compiling.BREAK_EVEN_STEPS, "GraphVAE", 3 * batches)
    compiles.clear()
    at_break_even = trainer_for(tiny_config, 3)
    assert not at_break_even.compiled and not compiles
    assert f"eager (trainer.compile auto: {3 * batches:,} planned steps" in step_note(at_break_even)
    beyond = trainer_for(tiny_config, 4)
    assert beyond.compiled and compiles == [beyond._objective]
    note = step_note(beyond)
    assert f"compiled (trainer.compile auto: {4 * batches:,} planned steps" in note
    assert "compiled graphs cached in " in note


def test_true_and_false_force_it_whatever_the_run_length(tiny_config, compiles, monkeypatch):
    monkeypatch.setitem(compiling.BREAK_EVEN_STEPS, "GraphVAE", 1)
    assert not trainer_for(tiny_config, 5, False).compiled and not compiles
    monkeypatch.setitem(compiling.BREAK_EVEN_STEPS, "GraphVAE", 10**9)
    forced = trainer_for(tiny_config, 1, True)
    assert forced.compiled and step_note(forced).startswith(
        "Training step: compiled (trainer.compile true)")


def test_auto_leaves_ddp_and_unmeasured_models_to_the_rule():
    assert compiling.decide("auto", None, "GraphVAE", 10**9, data_parallel=True)[0] is False
    assert compiling.decide(True, None, "GraphVAE", 1, data_parallel=True)[0] is True
    largest = max(compiling.BREAK_EVEN_STEPS.values())
    assert compiling.decide("auto", None, "SomeNewVAE", largest, False)[0] is False
    assert compiling.decide("auto", None, "SomeNewVAE", largest + 1, False)[0] is True
    assert compiling.decide(False, "reduce-overhead", "GraphVAE", 1, False)[0] is True


def test_the_setting_is_checked_and_a_stored_auto_can_be_overridden(tiny_config):
    assert ConfigParser(tiny_config)["trainer"]["compile"] == "auto"
    tiny_config["trainer"]["compile"] = "yes"
    with pytest.raises(ConfigError, match="'trainer.compile' must be true/false or 'auto'"):
        ConfigParser(tiny_config)
    tiny_config["trainer"]["compile"] = "auto"
    stored = ConfigParser(tiny_config).config  # as a checkpoint keeps it: "auto" written out
    assert ConfigParser(apply_overrides(stored, ["trainer.compile=false"]))["trainer"][
        "compile"] is False
    with pytest.raises(ConfigError, match="'trainer.epochs' must be an integer"):
        ConfigParser(apply_overrides(stored, ["trainer.epochs=auto"]))


def test_a_seed_gives_the_same_run_compiled_or_not(tiny_config):
    """The compiled step draws eager's random numbers (gates, reparameterisation): three
    training steps from one seed give the same losses, to float rounding (other draws would
    change them in the third digit), so "auto" choosing to compile does not change what a
    seed gives."""
    from data_loader.base_data_loader import to_device
    runs = []
    for setting in (False, True):
        trainer = trainer_for(tiny_config, 1, setting)
        trainer.begin_epoch(1)
        batches = iter(trainer.data_loader)
        losses = [trainer.train_step(to_device(next(batches), trainer.device))[0][0]["loss"]
                  for _ in range(3)]
        runs.append(torch.stack(losses))
    assert torch.allclose(*runs, rtol=1e-5), runs
