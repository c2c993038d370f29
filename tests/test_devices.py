"""Device, precision and thread choices: what `auto` picks from the hardware, and who wins."""

from unittest.mock import patch

import pytest
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
    from conceptspace.errors import UserError
    from conceptspace.model import FP32InputConv
    from conceptspace.run import load_run_config, load_snapshot
    from conceptspace.sampling import sample
    from conceptspace.tracker.offline import main as track_main
    from conceptspace.tracker.offline import open_tracker, tracked_model
    from conceptspace.tracker.track import Tracker
    from conceptspace.train import train
    from tests.helpers import fast_cfg, final_state

    runs, label = {}, {"fp32": "fp32", "bf16": "bf16 autocast", "bf16_fp32_input": "bf16 autocast, fp32 input conv"}
    for precision in label:
        run = tmp_path / precision
        train(fast_cfg(f"train.precision={precision}", steps=2, snapshots=1, tracker=True), run)
        runs[precision] = run
        assert provenance.read(run)[0]["precision"] == label[precision]
    final = {p: final_state(runs[p])["model"] for p in label}
    for p, q in [("fp32", "bf16"), ("bf16", "bf16_fp32_input")]:
        assert any(not torch.equal(final[p][k], final[q][k]) for k in final[p]), (p, q)
    # the tracker samples in the run's precision (samples this early are noise, so compare the images)
    tracker = open_tracker(load_run_config(runs["bf16"]), runs["bf16"], torch.device("cpu"))
    model = load_snapshot(ckpt.snapshot_dir(runs["bf16"], 2), torch.device("cpu"))
    probes = tracker.probes
    kwargs = dict(steps=4, batch_size=tracker.batch_size)
    assert tracker.autocast
    bf16 = sample(model, tracker.process, probes.vectors(), probes.seeds, autocast=True, **kwargs)
    assert not torch.equal(bf16, sample(model, tracker.process, probes.vectors(), probes.seeds, autocast=False,
                                        **kwargs))
    # offline tracking of a bf16_fp32_input run loads its snapshots with the fp32 input conv, as trained
    cfg = load_run_config(runs["bf16_fp32_input"])
    snapshot = ckpt.snapshot_dir(runs["bf16_fp32_input"], 2)
    assert type(tracked_model(cfg, snapshot, "cpu").unet.conv_in) is FP32InputConv
    assert type(tracked_model(load_run_config(runs["bf16"]), snapshot, "cpu").unet.conv_in) is torch.nn.Conv2d
    mixed = sample(tracked_model(cfg, snapshot, "cpu"), tracker.process, probes.vectors(), probes.seeds,
                   autocast=True, **kwargs)
    assert not torch.equal(mixed, sample(load_snapshot(snapshot, "cpu"), tracker.process, probes.vectors(),
                                         probes.seeds, autocast=True, **kwargs))
    # `conceptspace track --precision fp32` reads the same snapshots in fp32: no autocast, the plain input conv
    seen = []
    with patch.object(Tracker, "track", lambda self, model, step: seen.append((self.autocast, type(model.unet.conv_in),
                                                                              self.rows_file))):
        assert track_main([str(runs["bf16_fp32_input"]), "--precision", "fp32", "--rows", "fp32.jsonl"]) == 0
        assert track_main([str(runs["bf16_fp32_input"]), "--rows", "again.jsonl"]) == 0
    assert set(seen) == {(False, torch.nn.Conv2d, "fp32.jsonl"), (True, FP32InputConv, "again.jsonl")}
    with pytest.raises(UserError, match="--precision.*'bf16_fp32_input'"):
        track_main([str(runs["bf16_fp32_input"]), "--precision", "fp16"])


def test_fp32_input_conv_keeps_the_noise_bf16_rounds_away():
    """The VDM's case near t = 0: noise of 1e-3 on image values near 1, below bf16's rounding (2^-8 there).
    Under bf16 autocast the input convolution's response to the noise is mostly rounding; with
    keep_input_conv_fp32 it is the fp32 response, in fp32. Only the class changes: the same parameter objects
    and state-dict names, so optimizers and snapshots are unaffected."""
    from conceptspace.config import compose
    from conceptspace.model import build_model
    from synthetic_shapes import ShapesConfig

    cfg = compose(["model=tiny"])
    torch.manual_seed(0)
    model = build_model(cfg.model, ShapesConfig.from_cfg(cfg.data).spec, 16)
    image = 0.9 + 0.05 * torch.rand(4, 3, 16, 16)
    noisy = image + 1e-3 * torch.randn(image.shape)

    def response():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model.unet.conv_in(noisy).float() - model.unet.conv_in(image).float()

    exact = torch.nn.functional.conv2d(noisy - image, model.unet.conv_in.weight, padding=1)
    rounded = response()
    params, keys = [id(p) for p in model.parameters()], list(model.state_dict())
    model.keep_input_conv_fp32()
    kept = response()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.unet.conv_in(noisy).dtype == torch.float32
    assert torch.allclose(kept, exact, atol=1e-6)
    assert (rounded - exact).abs().mean() > 0.5 * exact.abs().mean()  # bf16: mostly rounding, not noise
    assert [id(p) for p in model.parameters()] == params and list(model.state_dict()) == keys
