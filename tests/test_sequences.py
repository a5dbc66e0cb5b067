"""Sequence data and RecurrentGraphVAE: ragged batches, masks, the VRNN special case, gates
across time, truncated BPTT, and learning on real handwriting."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import sample
import test as test_script
import train
from data_loader.base_data_loader import time_chunks
from data_loader.sequence_loaders import SequenceDataLoader, StrokesDataLoader
from data_loader.sequence_datasets import (
    load_piano_rolls,
    positions_to_strokes,
    score_to_roll,
)
from logger.sequences import strokes_to_positions
from model import RecurrentGraphVAE
from model.objective import negative_elbo
from tests.conftest import DATA_DIR, REPO, write_config
from tests.test_training import logged, run_dir
from utils.errors import run_cli

SMALL = dict(input_dim=3, n_nodes=3, node_dim=2, rnn_hidden=8, hidden=8, feature_dim=4,
             likelihood="strokes", n_mixtures=2)


def ragged_batch(lengths=(5, 2, 4), dim=3):
    g = torch.Generator().manual_seed(0)
    sequences = [torch.randn(n, dim, generator=g).numpy() for n in lengths]
    for s in sequences:
        s[:, 0] = 0.0
        s[-1, 0] = 1.0
    loader = SequenceDataLoader(sequences, batch_size=len(lengths), shuffle=False, seed=0,
                                num_replicas=1, rank=0)
    return next(iter(loader))


def test_ragged_batches_are_padded_with_masks():
    batch = ragged_batch()
    assert batch["x"].shape == (3, 5, 3)
    assert batch["mask"].tolist() == [[True] * 5, [True] * 2 + [False] * 3, [True] * 4 + [False]]
    assert torch.equal(batch["x"][1, 2:], torch.zeros(3, 3))


def test_padded_steps_do_not_change_the_elbo():
    model = RecurrentGraphVAE(**SMALL)
    batch = ragged_batch()
    torch.manual_seed(0)
    clean = model(batch)
    noisy = dict(batch, x=batch["x"].clone())
    noisy["x"][~batch["mask"]] = 100.0
    torch.manual_seed(0)
    dirty = model(noisy)
    for key in ("log_px", "kl", "log_ratio", "posterior_mean"):
        assert torch.allclose(clean[key], dirty[key]), key
    assert clean["units"].tolist() == [5, 2, 4]
    assert clean["posterior_mean"].shape == (11, 3, 2)  # one row per valid step
    loss, terms, count = negative_elbo(clean)
    assert count == 11 and torch.isfinite(loss)
    many = model.eval()(batch, n_samples=4)
    assert many["log_px"].shape == (12,) and many["posterior_mean"].shape == (11, 3, 2)


def test_one_node_without_cross_gates_is_a_vrnn():
    model = RecurrentGraphVAE(**{**SMALL, "n_nodes": 1, "node_dim": 6, "structure": "none",
                                 "cross_structure": "none"})
    assert len(model.gates.edges) == 0 and model.cross_gates.discrete().tolist() == [0.0]
    seen = []
    model.priors[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    model(ragged_batch())
    # The prior's input is [h_{t-1}, gated z_{t-1}]: the z part is always zero, so the prior
    # is a function of the recurrent state alone, as in the VRNN.
    assert all(torch.equal(inp[:, 8:], torch.zeros_like(inp[:, 8:])) for inp in seen)


def test_cross_step_gates_off_make_z_t_independent_of_z_t_minus_1_given_h():
    model = RecurrentGraphVAE(**{**SMALL, "cross_structure": "none"}).eval()
    h = torch.randn(4, 8)
    z_a, z_b = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    gates, cross = model.gates(4), model.cross_gates(4)
    z = [None, torch.randn(4, 2), torch.randn(4, 2)]
    for node in range(3):
        assert torch.equal(torch.stack(model.prior_params(node, h, z, z_a, gates, cross)),
                           torch.stack(model.prior_params(node, h, z, z_b, gates, cross)))
    full = RecurrentGraphVAE(**{**SMALL, "cross_structure": "full"}).eval()
    g, c = full.gates(4), full.cross_gates(4)
    assert not torch.equal(full.prior_params(2, h, z, z_a, g, c)[0],
                           full.prior_params(2, h, z, z_b, g, c)[0])


def test_tbptt_chunks_cover_the_sequence_and_carry_the_state():
    batch = ragged_batch(lengths=(7, 3))
    chunks = time_chunks(batch, 3)
    assert [c["x"].shape[1] for c in chunks] == [3, 3, 1]
    assert torch.equal(torch.cat([c["x"] for c in chunks], dim=1), batch["x"])
    model = RecurrentGraphVAE(**SMALL)
    first = model(chunks[0])
    with_state = model(dict(chunks[1], state=first["state"]))
    assert torch.isfinite(with_state["log_px"]).all()
    assert time_chunks(batch, None)[0]["x"] is batch["x"]


def test_importance_sampled_likelihood_of_sequences_is_at_least_the_elbo():
    from model.metrics import importance_sampled_log_likelihood
    model = RecurrentGraphVAE(**SMALL).eval()
    batch = ragged_batch()
    elbos = torch.stack([(lambda o: o["log_px"] - o["kl"].sum(-1))(model(batch))
                         for _ in range(200)]).mean(0)
    estimate, means = importance_sampled_log_likelihood(model, batch, 200)
    assert estimate.shape == (3,) and means.shape == (11, 3, 2)
    assert (estimate > elbos - 0.05).all()


def test_stroke_format_round_trip():
    positions = np.cumsum(np.random.default_rng(0).normal(size=(20, 2)), axis=0)
    steps = positions_to_strokes(positions.astype(np.float32))
    assert steps.shape == (19, 3) and steps[-1, 0] == 1.0 and steps[:-1, 0].sum() == 0
    (line,) = strokes_to_positions(steps)
    assert np.allclose(line, positions[1:] - positions[0], atol=1e-4)


def test_a_hand_made_score_becomes_the_expected_piano_roll():
    from music21 import chord, note, stream
    part = stream.Stream()
    part.insert(0.0, note.Note("C4", quarterLength=2.0))  # MIDI 60 -> key 39, steps 0-1
    part.insert(2.5, chord.Chord(["E4", "G4"], quarterLength=1.0))  # sounds at onset 3 only
    roll = score_to_roll(part)
    assert roll.shape == (4, 88)
    assert np.flatnonzero(roll[0]).tolist() == [39] and np.flatnonzero(roll[1]).tolist() == [39]
    assert roll[2].sum() == 0 and np.flatnonzero(roll[3]).tolist() == [43, 46]


def test_the_real_bach_chorales_are_read_from_music21s_corpus(tmp_path):
    """From the chorales' own files (an empty data folder: no cache to read instead)."""
    rolls = load_piano_rolls(tmp_path, limit=2)
    assert len(rolls) == 2 and all(r.shape[1] == 88 and len(r) > 16 for r in rolls)
    voices = np.concatenate(rolls).sum(axis=1)
    assert set(np.unique(np.concatenate(rolls))) <= {0.0, 1.0}
    assert voices.max() <= 4 and (voices >= 3).mean() > 0.5  # four-part harmony
    assert [p.name for p in tmp_path.iterdir()] == ["bach_chorales350_first2.npz"]


def test_the_real_handwriting_data_loads_offline():
    loader = StrokesDataLoader(data_dir=str(DATA_DIR), split="train", batch_size=8)
    assert len(loader.sequences) == 168  # 80 % of 30 shapes x 7 demonstrations
    batch = next(iter(loader))
    assert batch["x"].shape[2] == 3 and set(batch["x"][..., 0].unique().tolist()) <= {0.0, 1.0}
    assert abs(float(torch.cat(loader.sequences)[:, 1:].std()) - 1.0) < 0.05


@pytest.fixture
def strokes_config(tmp_path):
    config = json.loads((REPO / "configs" / "recurrent_graph_vae_strokes.json").read_text())
    config["arch"]["args"].update(rnn_hidden=32, hidden=32, feature_dim=16, node_dim=4)
    config["data_loader"]["args"] = {"data_dir": str(DATA_DIR), "subsample": 25}
    config["trainer"].update(epochs=4, save_dir=str(tmp_path / "saved"), tensorboard=False,
                             tbptt_steps=20)
    return config


def test_a_short_run_on_real_handwriting_lowers_the_validation_loss(strokes_config, tmp_path):
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, strokes_config))])) == 0
    val = logged(tmp_path / "saved", "val_loss")
    assert val[-1] < val[0] - 0.3, val
    checkpoint = run_dir(tmp_path / "saved") / "model_best.safetensors"
    assert run_cli(lambda: test_script.main(["--resume", str(checkpoint), "-k", "5"])) == 0
    results = json.loads(checkpoint.with_name("model_best-test.json").read_text())
    assert results["per"] == "step" and len(results["graph"]["cross_edges"]) == 9
    assert len(results["active_units"]) == 3 and results["n_units"] > results["n_examples"]
    out = tmp_path / "strokes.png"
    assert run_cli(lambda: sample.main(["--resume", str(checkpoint), "-n", "4",
                                        "--sequence-length", "30", "--out", str(out)])) == 0
    assert Image.open(out).size[0] > 100


def test_a_trusted_strokes_npy_converts_once_into_the_file_the_loader_reads(tmp_path):
    import pickle

    from data_loader import convert_strokes
    from data_loader.sequence_datasets import load_strokes
    from utils.errors import DataError
    rng = np.random.default_rng(0)
    strokes = [np.c_[rng.integers(0, 2, t), rng.normal(size=(t, 2))].astype(np.float32)
               for t in (5, 9, 3)]
    source, target = tmp_path / "strokes.npy", tmp_path / "strokes.npz"
    np.save(source, np.array(strokes, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="convert_strokes"):
        load_strokes(tmp_path, source=str(source))  # training never unpickles it
    assert run_cli(lambda: convert_strokes.main([str(source), str(target)])) == 0
    loaded = load_strokes(tmp_path, source=str(target))
    assert len(loaded) == 3 and all(np.array_equal(a, b) for a, b in zip(strokes, loaded))
    # As Python 2 era files are: a protocol-2 pickle, float64 (T, 3) arrays.
    old_style = np.array([s.astype(np.float64) for s in strokes], dtype=object)
    with open(source, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(old_style))
        pickle.dump(old_style, f, protocol=2)
    assert run_cli(lambda: convert_strokes.main([str(source), str(target)])) == 0
    loaded = load_strokes(tmp_path, source=str(target))
    assert all(np.array_equal(a, b) for a, b in zip(strokes, loaded))
    loader = StrokesDataLoader(split="train", source=str(target), valid_fraction=0.0,
                               test_fraction=0.0, batch_size=2)
    assert loader.input_dim == 3 and len(loader.sequences) == 3


@pytest.fixture
def cuda_autocast_policy_for_the_gru_cell():
    """CPU autocast with CUDA's policy for the GRU cell: CUDA autocast runs gru_cell with every
    input in bf16, the CPU's leaves it in fp32 (so a plain CPU run cannot show the fault)."""
    library = torch.library.Library("aten", "IMPL")
    autocast_key = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)

    def gru_cell_in_bf16(*tensors):
        with torch._C._ExcludeDispatchKeyGuard(autocast_key):
            return torch.ops.aten.gru_cell(*(None if t is None else t.to(torch.bfloat16)
                                             for t in tensors))

    library.impl("gru_cell", gru_cell_in_bf16, "AutocastCPU")
    yield
    library._destroy()


def test_under_bf16_autocast_the_recurrent_state_is_carried_in_fp32(
        cuda_autocast_policy_for_the_gru_cell):
    model = RecurrentGraphVAE(**SMALL)
    seen = []
    model.rnn.register_forward_hook(lambda m, inputs, h: seen.append((inputs[1].dtype, h.dtype)))
    batch = ragged_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = model(time_chunks(batch, 3)[0])
        second = model({**time_chunks(batch, 3)[1], "state": first["state"]})
        generated = model.generate(2, 3)
    assert len(seen) == 5 + 3
    assert all(state == (torch.float32, torch.float32) for state in seen), seen
    assert all(s.dtype == torch.float32 for s in first["state"] + second["state"])
    assert generated.dtype == torch.float32


def test_under_ddp_every_ranks_batch_of_a_step_is_as_long_as_the_longest():
    """So that with TBPTT every rank cuts as many chunks (DDP steps), no collective needed."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(2, 30, (20,), generator=g).tolist()
    sequences = [torch.ones(n, 3).numpy() for n in lengths]
    loaders = [SequenceDataLoader(sequences, batch_size=3, shuffle=True, seed=0, num_replicas=2,
                                  rank=r) for r in (0, 1)]
    for loader in loaders:
        loader.set_epoch(2)
    for b, (mine, theirs) in enumerate(zip(*loaders)):
        assert mine["x"].shape[1] == theirs["x"].shape[1], b
        longest = max(int(batch["mask"].sum(1).max()) for batch in (mine, theirs))
        assert mine["x"].shape[1] == longest, b
    batches = list(loaders[1].iter_from(3))  # resumed mid-epoch: the same batches
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(batches, list(loaders[1])[3:]))
    shards = [i for loader in loaders for i in loader.epoch_order()]
    assert sorted(set(shards)) == list(range(20))


def test_a_compiled_tbptt_step_compiles_once_whatever_the_last_chunks_length(
        tiny_config, monkeypatch):
    """The last chunk is padded to the TBPTT length (masked steps): one graph for the first
    chunk and one for the chunks that carry a state, whatever the lengths and masks (before:
    one more per distinct last-chunk length, up to the recompile limit, then eager)."""
    import functools

    from experiment import build_trainer
    from tests.test_ddp import piano_config
    from utils.config import ConfigParser
    config = piano_config(tiny_config, "unused", batch_size=3)
    config["trainer"].update(compile=True, tbptt_steps=4)
    compile_eagerly = functools.partial(torch.compile, backend="eager")  # dynamo only: fast
    monkeypatch.setattr(torch, "compile", compile_eagerly)
    trainer = build_trainer(ConfigParser(config), validate=False)
    trainer.begin_epoch(1)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    dim = trainer.data_loader.input_dim
    for steps in (5, 6, 7, 9, 10, 11, 8, 13):  # last chunks of 1, 2, 3, 1, 2, 3, 4, 1 steps
        x = torch.bernoulli(torch.full((3, steps, dim), 0.2))
        mask = torch.arange(steps) < torch.tensor([steps, steps - 1, 2]).unsqueeze(1)
        assert trainer.train_step({"x": x, "mask": mask})
    counters = torch._dynamo.utils.counters
    assert counters["stats"]["unique_graphs"] == 2, dict(counters["stats"])
    assert not counters["graph_break"], dict(counters["graph_break"])  # nor any graph break
    torch._dynamo.reset()
