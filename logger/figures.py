"""What TensorBoard (and MLflow) shows each validation epoch besides scalars: the learned graph
(logger/graph_figure.py; MLflow keeps it as JSON too); for images, reconstructions (inputs
above) and samples from the prior with the current discrete graph (torchvision grids); for
sequence models, validation sequences beside sequences the model generates
(logger/sequences.py, as sample.py draws them).
"""
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from logger.graph_figure import graph_figure
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
    """The first validation sequences (their valid steps) and as many generated ones, as long
    as the longest of them."""
    lengths = batch["mask"][:N_SEQUENCES].sum(1).tolist()
    data = [x[:length].cpu().numpy() for x, length in zip(batch["x"], lengths)]
    kind = sequence_kind(model)
    generated = model.generate(len(data), min(max(lengths), MAX_SEQUENCE_STEPS)).cpu().numpy()
    writer.add_figure("sequences/validation", sequence_figure(data, kind, "validation data"),
                      epoch)
    writer.add_figure("sequences/generated", sequence_figure(generated, kind, "generated"),
                      epoch)


def save_images(images, path, nrow=8):
    """(n, C, H, W) images in [0, 1] as one PNG grid."""
    with atomic_write(path) as f:
        save_image(images, f, format=Path(path).suffix[1:] or "png", nrow=nrow, pad_value=0.5)
