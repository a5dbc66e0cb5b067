"""What a training run prints: a one-line model summary (the architecture goes to the log
file), a header with the data, batches and device, epoch blocks with units, edge tables."""
import re

import train
from logger.console import edge_table
from model import GraphVAE, RecurrentGraphVAE
from tests.conftest import write_config
from tests.test_training import run_dir
from trainer.checkpoint import load_checkpoint
from utils.errors import run_cli


def read_table(rows):
    """{"source->target": value} back from edge_table's rows."""
    targets = rows[0].split()
    values = {}
    for row in rows[1:]:
        source, *cells = row.split()
        values.update({f"{source}->{t}": float(c) for t, c in zip(targets, cells) if c != "·"})
    return values


def test_the_edge_table_holds_every_edge_once_sources_by_targets():
    model = RecurrentGraphVAE(n_nodes=3, node_dim=2, rnn_hidden=8, hidden=8, feature_dim=4)
    probs = {name: (k + 1) / 13 for k, name in enumerate(model.edge_probs())}
    rows = edge_table(probs)
    assert read_table(rows) == {name: round(p, 3) for name, p in probs.items()}
    # z1, z2 within the step (z0 has no children), then every node of step t-1.
    assert [row.split()[0] for row in rows[1:]] == ["z1", "z2", "z0(t-1)", "z1(t-1)", "z2(t-1)"]
    assert max(len(row) for row in rows) < 40


def test_a_run_prints_a_summary_a_header_and_epoch_blocks_with_units(tiny_config, tmp_path,
                                                                     capsys):
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, tiny_config))])) == 0
    out = capsys.readouterr().out
    assert "Linear(" not in out  # no module dump on the console
    (log,) = (tmp_path / "saved" / "log").glob("*/*/info.log")
    assert "Linear(in_features=784" in log.read_text()  # the architecture is in the file
    args = load_checkpoint(run_dir(tmp_path / "saved") / "model_best.safetensors")["config"][
        "arch"]["args"]
    summary = next(line for line in out.splitlines() if line.startswith("GraphVAE:"))
    counts = [int(n.replace(",", "")) for n in re.findall(r"\b([0-9][0-9,]*)\b", summary)]
    assert counts[0] == sum(counts[1:]) == GraphVAE(input_dim=784, **args).n_parameters()
    header = next(line for line in out.splitlines() if line.startswith("Data:"))
    assert "fashion_mnist" in header and "512 (of 59,000) training examples" in header
    assert "8 batches of up to 64 per epoch" in header and "device cpu" in header
    assert "Epoch 1 (losses, KL and edge values in nats per image)" in out
    assert "edge_probs (σ(α)), from row to column:" in out
