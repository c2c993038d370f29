"""`conceptspace sample`: prompts in words through the ConceptSpec, the tracker's images at a tracked step,
every bad input one line with nothing written."""

import numpy as np
import pytest
import torch
from PIL import Image

from conceptspace.concepts import Concept, ConceptSpec
from conceptspace.errors import UserError
from conceptspace.prompt import parse_prompt
from conceptspace.train import train
from synthetic_shapes import ShapesConfig
from tests.helpers import fast_cfg

CELEBA = ConceptSpec((Concept("Male", ("male", "female"), ((1.0, 0.0), (0.0, 1.0))),
                      Concept("Smiling", ("not_smiling", "smiling"), ((1.0, 0.0), (0.0, 1.0))),
                      Concept("Wearing_Hat", ("no_hat", "hat"), ((1.0, 0.0), (0.0, 1.0)))),
                     held_out=(("female", "smiling", "hat"),))


@pytest.mark.parametrize("spec, text, cell", [
    (ShapesConfig().spec, "small blue circle", (1, 1)),
    (ShapesConfig().spec, "Blue SMALL", (1, 1)),
    (ShapesConfig().spec, "large red", (0, 0)),
    (ShapesConfig(concepts=("color", "size", "bg"), held_out=(("blue", "small", "dark"),)).spec,
     "dark small blue", (1, 1, 1)),
    (CELEBA, "female not smiling no hat", (1, 0, 0)),
    (CELEBA, "not_smiling male hat", (0, 0, 1)),
    (CELEBA, "smiling female with-hat".replace("with-", ""), (1, 1, 1)),
    (CELEBA, "no-hat female smiling", (1, 1, 0)),
])
def test_prompts_in_words(spec, text, cell):
    assert parse_prompt(spec, text, ["circle"]) == cell


@pytest.mark.parametrize("text, message", [
    ("female smiling", "names no value of ['Wearing_Hat']"),
    ("female smiling hat cat", "unknown word 'cat'; known words — Male: male, female; Smiling: not smiling"),
    ("female male smiling hat", "two values of 'Male'"),
    ("not female smiling hat", "unknown word 'not'"),  # 'not' alone is no value; never read as part of 'smiling'
])
def test_bad_prompts_name_what_is_wrong(text, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_prompt(CELEBA, text)


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(fast_cfg(steps=4, snapshots=2, tracker=True), run)
    return run


def grid_row(path, row, size=16):
    """Row `row` of a make_grid(padding=1) PNG of size-px images."""
    image = np.asarray(Image.open(path).convert("RGB"))
    return image[row * (size + 1):(row + 1) * (size + 1) + 1]


def test_sample_at_a_tracked_step_reproduces_the_trackers_images(run_cli, tracked_run):
    code, out, err = run_cli("sample", str(tracked_run), "small blue circle", "--step", "4", "--n", "2")
    assert code == 0, err
    assert "step 4: blue-small joint accuracy" in out and "/2 blue" in out
    ours = np.asarray(Image.open(tracked_run / "samples" / "small-blue-circle_naive_step000004.png").convert("RGB"))
    cells = ShapesConfig().spec.cells
    theirs = grid_row(tracked_run / "tracker" / "samples" / "step_000004.png", cells.index((1, 1)))
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)
    code, _, err = run_cli("sample", str(tracked_run), "small blue", "--step", "4", "--n", "2", "--seed", "7")
    other = np.asarray(Image.open(tracked_run / "samples" / "small-blue_naive_step000004.png").convert("RGB"))
    assert code == 0 and not np.array_equal(other, ours)


def test_sample_every_step_by_a_method_writes_a_strip_and_a_gif(run_cli, tracked_run):
    code, out, err = run_cli("sample", str(tracked_run), "blue small", "--step", "all", "--method", "overprompt",
                             "--n", "2", "overprompt.offset=0.25")
    assert code == 0, err
    assert out.count("joint accuracy") == 2
    for suffix in (".png", ".gif"):
        assert (tracked_run / "samples" / f"blue-small_overprompt_offset=0.25_steps{suffix}").stat().st_size > 0
    code, out, err = run_cli("sample", str(tracked_run), "--vector", "0.05,0.05,0.95,0.3", "--n", "2")
    assert code == 0 and "not scored: no --cell" in out


@pytest.mark.parametrize("args, message", [
    (["tiny blue"], "unknown word 'tiny'"),
    (["red blue small"], "two values of 'color'"),
    (["blue"], "names no value of ['size']"),
    (["--vector", "0.1,0.2"], "--vector: got 2 numbers; allowed: 4"),
    (["--vector", "0.1,0.2,1.5,0.3"], "leaves its valid range"),
    (["blue small", "--step", "3"], "3 was not saved; nearest saved steps: [2, 4]"),
    (["blue small", "overprompt.offset=0.2"], "need a --method other than naive"),
    ([], "PROMPT: missing"),
])
def test_bad_input_is_one_line_and_writes_nothing(run_cli, tmp_path, tracked_run, args, message):
    before = sorted(p.name for p in (tracked_run / "samples").glob("*")) if (tracked_run / "samples").exists() else []
    code, _, err = run_cli("sample", str(tracked_run), *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
    after = sorted(p.name for p in (tracked_run / "samples").glob("*")) if (tracked_run / "samples").exists() else []
    assert after == before


def test_runs_without_snapshots_and_broken_snapshots_are_named(run_cli, tmp_path, tracked_run):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tracked_run, bare, ignore=shutil.ignore_patterns("snapshots"))
    code, _, err = run_cli("sample", str(bare), "blue small")
    assert code == 2 and "has no snapshots" in err
    broken = tmp_path / "broken"
    shutil.copytree(tracked_run, broken, ignore=shutil.ignore_patterns("samples"))
    weights = next((broken / "snapshots" / "step_000004").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    code, _, err = run_cli("sample", str(broken), "blue small", "--step", "4")
    assert code == 2 and "step_000004: cannot be read" in err and err.count("\n") == 1
    assert not (broken / "samples").exists() or not list((broken / "samples").glob("*step000004*"))


def test_the_strip_wraps_into_a_sheet_about_twice_as_wide_as_tall(tmp_path):
    """Many snapshots make a contact sheet, not one very wide row."""
    from conceptspace.sample_command import strip_and_gif

    grids = [(step, torch.rand(3, 18, 137)) for step in range(1, 13)]  # a row of 8 samples per frame
    png, gif = strip_and_gif(grids, tmp_path, "s")
    sheet, frame = Image.open(png), Image.open(gif)
    cols, rows = sheet.width // frame.width, sheet.height // frame.height
    assert cols * rows >= 12 and rows > 1 and 1 <= sheet.width / sheet.height <= 4
    assert getattr(frame, "n_frames", 1) == 12


def test_wandb_logs_every_grid_to_the_runs_own_wandb_run(run_cli, tmp_path, monkeypatch):
    """`--wandb` reopens the run's W&B run (its id from the run dir) and logs one image per sampled step; a run
    without a W&B run says so in one line."""
    import conceptspace.logger as logger_module

    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = tmp_path / "run"
    train(fast_cfg("logger=wandb", steps=4, snapshots=2), run)
    logged, opened = [], []
    real_init = logger_module.RunLogger.__init__

    def spy_init(self, cfg, run_dir, config, run_id, name):
        opened.append(run_id)
        real_init(self, cfg, run_dir, config, run_id, name)

    monkeypatch.setattr(logger_module.RunLogger, "__init__", spy_init)
    monkeypatch.setattr(logger_module.RunLogger, "log_images", lambda self, images, step: logged.append((images, step)))
    code, out, err = run_cli("sample", str(run), "blue small", "--step", "all", "--n", "2", "--wandb")
    assert code == 0, err
    assert opened == [(run / logger_module.RUN_ID_FILE).read_text().strip()]
    (images, step), = logged
    assert sorted(images) == ["sample/blue-small_naive/step_000002", "sample/blue-small_naive/step_000004"] \
        and step == 4
    assert all(a.dtype == np.uint8 and a.ndim == 3 for a in images.values())


def test_wandb_without_a_wandb_run_is_one_line(run_cli, tracked_run):
    code, out, err = run_cli("sample", str(tracked_run), "blue small", "--n", "2", "--wandb")
    assert code == 0, err
    assert "--wandb: this run has no W&B run (logger.kind) to log to; nothing logged" in out
