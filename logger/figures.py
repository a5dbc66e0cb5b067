"""What TensorBoard (and MLflow) shows each validation epoch besides scalars: the learned graph
(logger/graph_figure.py; MLflow keeps it as JSON too); for images, reconstructions (inputs
above) and samples from the prior with the current discrete graph (torchvision grids); for
sequence models, validation sequences, the model's reconstructions of them and sequences the
model generates (logger/sequences.py, as sample.py draws them). Also sample.py's grids:
samples, and traversals titled and labelled with what their rows and columns are.
"""
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from logger.graph_figure import graph_figure
from logger.plotting import plt
from logger.sequences import sequence_figure, sequence_kind
from utils.files import atomic_write

N_RECONSTRUCTIONS = 16
N_SAMPLES = 64
N_SEQUENCES = 4
MAX_SEQUENCE_STEPS = 200  # steps of each generated sequence, at most


@torch.no_grad()
def log_epoch_figures(writer, model, x_valid, image_shape, epoch, seed=None):
    """x_valid: a batch of validation inputs; image_shape: (C, H, W), or None for non-images;
    seed: the run's, for the graph's title."""
    was_training = model.training
    model.eval()
    graph = model.describe_graph()
    writer.add_json("graph", graph, epoch)  # MLflow keeps it beside the picture
    writer.add_figure("graph", graph_figure(graph, title=f"{type(model).__name__} graph",
                                            epoch=epoch, seed=seed), epoch)
    if hasattr(model, "generate"):
        log_sequences(writer, model, x_valid, epoch)
    elif image_shape is not None:
        log_images(writer, model, x_valid, image_shape, epoch)
    model.train(was_training)


def log_images(writer, model, x_valid, image_shape, epoch):
    as_images = lambda t: model.likelihood.mean(t).view(-1, *image_shape).cpu()  # noqa: E731
    x = x_valid[:N_RECONSTRUCTIONS]
    recons = as_images(model(x)["x_params"])
    inputs = x.view(-1, *image_shape).cpu()
    writer.add_image("reconstructions", make_grid(torch.cat([inputs, recons]), nrow=len(x)),
                     epoch)
    samples, _ = model.sample_prior(N_SAMPLES)
    writer.add_image("samples", make_grid(as_images(samples), nrow=8), epoch)


def log_sequences(writer, model, batch, epoch):
    """The first validation sequences (their valid steps), the model's reconstructions of them
    (the likelihood's means given latents drawn from the posterior) and as many generated
    sequences, as long as the longest of them."""
    first = {"x": batch["x"][:N_SEQUENCES], "mask": batch["mask"][:N_SEQUENCES]}
    lengths = first["mask"].sum(1).tolist()
    valid_steps = lambda steps: [x[:n].cpu().numpy() for x, n in zip(steps, lengths)]  # noqa: E731
    data = valid_steps(first["x"])
    reconstructed = valid_steps(model.likelihood.mean(model(first)["x_params"]))
    kind = sequence_kind(model)
    generated = model.generate(len(data), min(max(lengths), MAX_SEQUENCE_STEPS)).cpu().numpy()
    writer.add_figure("sequences/validation", sequence_figure(data, kind, "validation data"),
                      epoch)
    writer.add_figure("sequences/reconstructed",
                      sequence_figure(reconstructed, kind, "reconstructed (validation data "
                                                           "through the model)"), epoch)
    writer.add_figure("sequences/generated", sequence_figure(generated, kind, "generated"),
                      epoch)


def save_images(images, path, nrow=8):
    """(n, C, H, W) images in [0, 1] as one PNG grid."""
    with atomic_write(path) as f:
        save_image(images, f, format=Path(path).suffix[1:] or "png", nrow=nrow, pad_value=0.5)


def traversal_figure(images, node, parents, steps, title):
    """A traversal (sample.py --traverse): rows x steps images, row-major, as one grid under a
    title (title: which model; the node traversed is added) and labels that say what its rows
    and columns are. parents: the node's parents in the discrete graph."""
    rows = len(images) // steps
    grid = make_grid(images, nrow=steps, pad_value=0.5).permute(1, 2, 0).cpu().numpy()
    width = max(6.0, 0.6 * steps)  # inches: room for the labels at 9 pt
    figure, ax = plt.subplots(figsize=(width, width * grid.shape[0] / grid.shape[1] + 0.8),
                              layout="constrained")
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    prior = f"p(z{node} | {', '.join(f'z{j}' for j in parents)})" if parents else \
        f"p(z{node}) (it has no parents)"
    ax.set_title(f"{title}: what node z{node} controls")
    ax.set_xlabel(f"columns: {steps} draws of z{node} from {prior}")
    ax.set_ylabel(f"rows: {rows} draws of the other nodes,\neach kept along its row")
    return figure
