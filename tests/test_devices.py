"""Device, precision and thread choices: what `auto` picks from the hardware, and who wins."""

import torch


def test_native_bf16_reads_the_cpu_feature_probe(monkeypatch):
    from conceptspace.devices import native_bf16

    caps = {"amx_bf16": False, "avx512_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    assert not native_bf16(torch.device("cpu"))
    caps["avx512_bf16"] = True
    assert native_bf16(torch.device("cpu"))


def test_threads_follow_the_affinity_mask_unless_omp_num_threads_is_set(monkeypatch):
    from conceptspace.devices import configure_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
        assert configure_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert configure_threads() == 2  # the explicit setting wins
    finally:
        torch.set_num_threads(before)


def test_train_precision_bf16_reaches_the_training_step_and_the_tracker(tmp_path):
    """bf16 is not a label: the trained weights and the tracked samples differ from fp32's, and the run's
    provenance says which precision ran."""
    from conceptspace import checkpoint as ckpt
    from conceptspace import provenance
    from conceptspace.run import load_run_config, load_snapshot
    from conceptspace.sampling import sample
    from conceptspace.tracker.offline import open_tracker
    from conceptspace.train import train
    from tests.helpers import fast_cfg, final_state

    runs = {}
    for precision in ("fp32", "bf16"):
        run = tmp_path / precision
        train(fast_cfg(f"train.precision={precision}", steps=2, snapshots=1, tracker=True), run)
        runs[precision] = run
        assert provenance.read(run)[0]["precision"] == (
            "bf16 autocast" if precision == "bf16" else "fp32")
    a, b = (final_state(runs[p])["model"] for p in ("fp32", "bf16"))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # the tracker samples in the run's precision (samples this early are noise, so compare the images)
    tracker = open_tracker(load_run_config(runs["bf16"]), runs["bf16"], torch.device("cpu"))
    model = load_snapshot(ckpt.snapshot_dir(runs["bf16"], 2), torch.device("cpu"))
    probes = tracker.probes
    kwargs = dict(steps=4, batch_size=tracker.batch_size)
    assert tracker.autocast
    assert not torch.equal(sample(model, tracker.process, probes.vectors(), probes.seeds, autocast=True, **kwargs),
                           sample(model, tracker.process, probes.vectors(), probes.seeds, autocast=False, **kwargs))
