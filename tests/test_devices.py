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
