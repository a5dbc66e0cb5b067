"""What TensorBoard shows of a model each validation epoch, besides scalars: reconstructions,
samples from the prior with the current discrete graph, and a picture of the learned graph."""
import numpy as np
import torch

from utils.drawing import draw_graph, image_grid, reconstruction_grid

N_RECONSTRUCTIONS = 16
N_SAMPLES = 64


@torch.no_grad()
def log_epoch_figures(writer, model, x_valid, image_shape, epoch):
    """x_valid: a few validation inputs (B, D); image_shape: (C, H, W), or None for non-images."""
    was_training = model.training
    model.eval()
    writer.add_image("graph", np.asarray(draw_graph(model.describe_graph())), epoch,
                     dataformats="HWC")
    if image_shape is not None:
        as_images = lambda t: t.view(-1, *image_shape).cpu()  # noqa: E731
        x = x_valid[:N_RECONSTRUCTIONS]
        recons = torch.sigmoid(model(x)["x_params"])
        grid = reconstruction_grid(as_images(x), as_images(recons), len(x))
        writer.add_image("reconstructions", image_array(grid), epoch, dataformats="HWC")
        samples, _ = model.sample_prior(N_SAMPLES)
        grid = image_grid(as_images(torch.sigmoid(samples)), nrow=8)
        writer.add_image("samples", image_array(grid), epoch, dataformats="HWC")
    model.train(was_training)


def image_array(image):
    """A PIL image as an (H, W, 3) uint8 array, the layout TensorBoard takes."""
    return np.asarray(image.convert("RGB"))
