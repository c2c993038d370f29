"""CelebA end to end on the CPU, on a fabricated mini tree: train the attribute classifier, train a tiny
diffusion model on the training cells, track it with the classifier as readout."""

from conceptspace.tracker.rows import read_rows
from tests.celeba_fake import build_tree

TINY = ["logger=none", "data.image_size=16", "data.per_cell=8", "model=tiny", "device=cpu"]


def test_train_probe_then_train_and_track_on_a_fake_tree(run_cli, tmp_path):
    root = build_tree(tmp_path / "celeba")
    data = ["data=celeba", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}"]
    code, out, err = run_cli("train-probe", *data, *TINY, "probe.steps=20", "probe.batch_size=8",
                             "probe.eval.min_accuracy=0.0", f"hydra.run.dir={tmp_path / 'probe'}")
    assert code == 0, err
    probe = tmp_path / "probe" / "probe"
    assert (probe / "config.json").exists()

    code, _, err = run_cli("train", *data, *TINY, "train.steps=4", "train.batch_size=4", "train.snapshots.count=2",
                           "train.snapshots.start=2", "tracker.readouts=[learned]", f"tracker.probe_path={probe}",
                           "tracker.n_probes=2", "diffusion.sample_steps=3", f"hydra.run.dir={tmp_path / 'run'}")
    assert code == 0, err
    rows = read_rows(tmp_path / "run" / "tracker" / "rows.jsonl")
    assert {r["step"] for r in rows} == {2, 4}
    assert {r["cell"] for r in rows if r["held_out"]} == {"female-smiling"}
    assert {r["readout"] for r in rows} == {"learned"} and set(rows[0]["p"]) == {"Male", "Smiling"}

    code, _, err = run_cli("train", *data, *TINY, "tracker.readouts=[analytic]", f"hydra.run.dir={tmp_path / 'x'}")
    assert code == 2 and "'analytic' reads synthetic shapes only" in err
