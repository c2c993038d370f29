import pytest

from tests.helpers import assert_one_line_error


def test_render_writes_cell_grids_and_prints_signal(run_cli, tmp_path):
    code, out, _ = run_cli("render", "render.per_cell=4", "render.signal_pairs=16", f"hydra.run.dir={tmp_path}/r")
    assert code == 0
    assert "norm color" in out and "held out: ['blue-small']" in out
    names = sorted(p.name for p in (tmp_path / "r").glob("cell_*.png"))
    assert names == ["cell_blue-large_train.png", "cell_blue-small_heldout.png", "cell_red-large_train.png",
                     "cell_red-small_train.png"]


@pytest.mark.parametrize("override, message", [
    ("data.sep_col=0.9", "data.sep_col: got 0.9; allowed: a number in (0.0, 0.8]"),
    ("data.sep_size=-0.1", "data.sep_size"),
    ("data.shape=hexagon", "data.shape: got 'hexagon'; allowed: ['circle', 'square', 'triangle']"),
    ("data.image_size=4", "data.image_size"),
    ("seed=abc", "seed: got 'abc'"),
    ("data.held_out=[[green,small]]", "data.held_out: concept 'color': unknown value 'green'"),
    ("data.held_out=[[blue,small,dark]]", "data.held_out"),
    ("data.foo=1", "unknown config key 'data.foo'"),
    ("data=nope", "data: unknown option 'nope'; allowed: ['celeba', 'celeba_male_hat', 'shapes_2x2', 'shapes_2x2x2']"),
    ("device=tpu", "device: got 'tpu'"),
])
def test_bad_input_is_one_line_and_writes_nothing(run_cli, tmp_path, override, message):
    assert_one_line_error(run_cli, "render", override, message, tmp_path)


def test_unknown_verb(run_cli):
    code, _, err = run_cli("paint")
    assert code == 2 and "unknown command 'paint'" in err


def test_long_overrides_give_a_run_dir_name_that_fits_and_is_stable():
    from conceptspace.config import MAX_NAME_BYTES, short_dirname

    short = "seed=0,train.steps=10"
    assert short_dirname(short) == short
    long = ",".join(f"model.option_{i}=value_{i}" for i in range(20))
    other = long.replace("value_19", "value_20")
    assert len(short_dirname(long).encode()) <= MAX_NAME_BYTES
    assert short_dirname(long) == short_dirname(long)  # rerun = resume: same command, same dir
    assert short_dirname(long) != short_dirname(other)  # runs that differ late still get their own dir
    assert short_dirname(long).startswith(long[:100])
