"""The renderer, checked from the pixels (not by re-deriving the code's formulas)."""

import numpy as np
import pytest
import torch

from conceptspace.concepts import ConceptError
from synthetic_shapes import ShapesConfig, ShapesWorld
from synthetic_shapes.config import SHAPES
from synthetic_shapes.reference import render_one
from synthetic_shapes.signal import concept_signal

S = 32
PX = 2 / (S - 1)  # one pixel in canvas units


def world(**kw):
    return ShapesWorld(ShapesConfig(**kw))


def test_images_shape_range_dtype():
    b = world().train_batch(torch.arange(10), seed=0)
    assert b.images.shape == (10, 3, S, S) and b.images.dtype == torch.float32
    assert b.images.min() >= 0 and b.images.max() <= 1
    assert b.vectors.shape == (10, 4) and b.cells.shape == (10, 2)


def test_deterministic_and_seed_dependent():
    w = world()
    a, b = w.train_batch(torch.arange(16), 3), w.train_batch(torch.arange(16), 3)
    assert torch.equal(a.images, b.images) and torch.equal(a.vectors, b.vectors)
    assert not torch.equal(a.images, w.train_batch(torch.arange(16), 4).images)


def test_independent_of_batch_size_and_chunking():
    whole = ShapesWorld(ShapesConfig(), chunk=1024).train_batch(torch.arange(50), 7)
    chunked = ShapesWorld(ShapesConfig(), chunk=7).train_batch(torch.arange(50), 7)
    pieces = torch.cat([whole_piece.images for whole_piece in
                        (ShapesWorld(ShapesConfig()).train_batch(torch.arange(i, min(i + 13, 50)), 7)
                         for i in range(0, 50, 13))])
    assert torch.equal(whole.images, chunked.images) and torch.equal(whole.images, pieces)


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_per_image_scipy_reference(shape):
    w = world(noise_std=0.0, shape=shape)
    b = w.train_batch(torch.arange(24), 5)
    f = b.factors
    ref = np.stack([render_one(shape, f["center"][i].numpy(), f["radius"][i].item(), f["color"][i].numpy(),
                               f["bg"][i].numpy()) for i in range(24)])
    assert np.abs(ref - b.images.numpy()).max() < 1e-5


def centre_pixel(images, centers):
    """The object's colour, read at the pixel nearest the centre (blur cannot reach it for large objects)."""
    ij = torch.round((centers + 1) / PX).long()
    return images[torch.arange(len(images)), :, ij[:, 0], ij[:, 1]]


@pytest.mark.parametrize("sep_col", [0.1, 0.4, 0.8])
def test_class_means_and_colour_jitter_from_pixels(sep_col):
    w, h, n = world(sep_col=sep_col), sep_col / 2, 600
    red, blue = torch.tensor([0.5 + h, 0.5 - h, 0.5 - h]), torch.tensor([0.5 - h, 0.5 - h, 0.5 + h])
    test = w.batch(torch.tensor([[1, 0]] * 50), torch.arange(50), 0, "test")
    assert (centre_pixel(test.images, test.factors["center"]) - blue).abs().max() < 0.005  # exact mean + noise
    train = w.batch(torch.tensor([[0, 0]] * n), torch.arange(n), 1, "train")
    colour = centre_pixel(train.images, train.factors["center"])
    jitter = sep_col / 8
    assert (colour - red).abs().max() <= jitter + 0.005  # inside mean ± Δ/8 ...
    assert ((colour - red).abs().amax(0) > 0.9 * jitter).all()  # ... and filling it


def test_backgrounds_from_pixels():
    """Training backgrounds are tinted U(0.8, 1) per channel; test renders are 0.9 grey (small circles never
    reach the corner pixel)."""
    w, n = world(), 400
    train = w.batch(torch.tensor([[0, 1]] * n), torch.arange(n), 0, "train").images[:, :, 0, 0]
    assert train.min() > 0.8 - 0.005 and train.max() <= 1.0 and train.min() < 0.81 and train.max() > 0.99
    assert (train[:, 0] - train[:, 1]).abs().max() > 0.1  # channels drawn independently
    test = w.batch(torch.tensor([[1, 1]] * 50), torch.arange(50), 0, "test").images[:, :, 0, 0]
    assert (test - 0.9).abs().max() < 0.005


def foreground_radius(images, color, bg):
    """Radius from the foreground area (sum of the per-pixel mixing fraction), in canvas units."""
    frac = ((images[:, 0] - bg[:, 0, None, None]) / (color[:, 0] - bg[:, 0])[:, None, None]).clamp(0, 1)
    return torch.sqrt(frac.sum((1, 2)) / torch.pi) * PX


def test_radius_means_and_jitter_from_pixels():
    w = world(sep_size=0.4, center_range=0.2)  # keep the circles inside the canvas
    for cell, mean in [((0, 1), 0.25), ((1, 1), 0.25), ((0, 0), 0.65)]:
        b = w.batch(torch.tensor([cell] * 40), torch.arange(40), 0, "test")
        r = foreground_radius(b.images, b.factors["color"], b.factors["bg"])
        assert (r - mean).abs().max() < 0.5 * PX
    b = w.batch(torch.tensor([[0, 1]] * 400), torch.arange(400), 2, "train")
    r = foreground_radius(b.images, b.factors["color"], b.factors["bg"])
    assert r.min() > 0.1 - 0.5 * PX and r.max() < 0.25 + 0.15 + 0.5 * PX  # floor 0.1, mean + 3Δ/8
    assert r.max() > 0.25 + 0.12


def test_pixel_noise_std():
    b = world(center_range=0.0, sep_size=0.1).batch(torch.tensor([[0, 1]] * 64), torch.arange(64), 0, "test")
    background = b.images[:, :, :6, :6]  # far from a small centred circle: grey 0.9 + noise
    assert abs((background - 0.9).std().item() - 0.001) < 1e-4 and abs((background - 0.9).mean()) < 1e-4


def test_held_out_cells_never_in_training_data():
    for cfg in [ShapesConfig(), ShapesConfig(concepts=("color", "size", "bg"),
                                             held_out=(("blue", "small", "dark"), ("red", "small", "light")))]:
        w = ShapesWorld(cfg)
        cells = {tuple(c) for c in w.train_batch(torch.arange(5000), 0).cells.tolist()}
        assert cells == set(w.spec.train_cells) and not cells & set(w.spec.held_out)


def test_conditioning_vectors_are_the_sampled_factors_or_onehots():
    b = world().train_batch(torch.arange(8), 0)
    spec = world().spec
    assert torch.equal(spec.split(b.vectors)["color"], b.factors["color"])
    assert torch.equal(spec.split(b.vectors)["size"][:, 0], b.factors["radius"])
    onehot = world(conditioning="onehot").train_batch(torch.arange(8), 0)
    assert torch.equal(onehot.vectors, world(conditioning="onehot").spec.encode(onehot.cells))
    prompts = world().prompt_batch("blue-small", 4, 0)
    assert torch.allclose(prompts.vectors, spec.encode(["blue-small"] * 4))


def test_concept_signal_matches_reference_and_rises_with_delta_color():
    # reference: paper_setup.md §4.3 (normalised colour component at Δsize = 0.4)
    reference = {0.1: 0.05, 0.247: 0.24, 0.395: 0.47, 0.616: 0.69, 0.8: 0.79}
    colour = [concept_signal(world(sep_col=d))["normalised"]["color"] for d in reference]
    assert np.allclose(colour, list(reference.values()), atol=0.02)
    raw = [concept_signal(world(sep_col=d), n=64)["raw"]["color"] for d in np.linspace(0.1, 0.8, 8)]
    assert all(b > a for a, b in zip(raw, raw[1:]))


@pytest.mark.parametrize("kwargs, field", [
    ({"sep_col": -0.1}, "data.sep_col"), ({"sep_col": 0.9}, "data.sep_col"), ({"sep_size": 0.7}, "data.sep_size"),
    ({"sep_bg": 0.0}, "data.sep_bg"), ({"shape": "hexagon"}, "data.shape"), ({"image_size": 7}, "data.image_size"),
    ({"held_out": (("green", "small"),)}, "data.held_out"), ({"held_out": (("blue",),)}, "data.held_out"),
    ({"concepts": ("color", "weight")}, "data.concepts"), ({"conditioning": "text"}, "data.conditioning"),
])
def test_bad_generator_settings(kwargs, field):
    with pytest.raises(ConceptError, match=field):
        ShapesConfig(**kwargs)


@pytest.mark.parametrize("seed", [1.5, "1", None, True, -1])
def test_bad_seed(seed):
    with pytest.raises(ConceptError, match="seed"):
        world().train_batch(torch.arange(2), seed)
