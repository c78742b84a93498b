"""benchmarks/probe_layers.py: the independent linear probe used to check the teacher heads."""


import torch

from scripts import load_script

probe_layers = load_script("benchmarks/probe_layers.py")


def _data(scale: float, n: int = 200, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    # a constant offset plus a label signal 1000x smaller than it, like the bottom [CLS] vectors
    x = 5.0 + scale * (torch.randn(n, 8, generator=g) * 0.3 + (2 * y - 1).float().unsqueeze(1))
    return x, y


def test_probe_reads_a_tiny_but_separable_signal():
    x, y = _data(scale=1e-3)
    xd, yd = _data(scale=1e-3, seed=1)
    assert probe_layers.probe(x, y, xd, yd, num_labels=2) == 1.0


def test_probe_on_pure_noise_stays_near_chance():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(400, 8, generator=g), torch.randint(0, 2, (400,), generator=g)
    xd, yd = torch.randn(400, 8, generator=g), torch.randint(0, 2, (400,), generator=g)
    assert 0.4 < probe_layers.probe(x, y, xd, yd, num_labels=2) < 0.6


def test_regression_task_is_refused_with_exit_code_2(tmp_path, capsys):
    rc = probe_layers.main(["--teacher", str(tmp_path), "--task", "sts-b", "--data-dir", str(tmp_path)])
    assert rc == 2
    assert "classification" in capsys.readouterr().err


def test_mean_cosine_against_the_pairwise_loop():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 5, generator=g)
    u = torch.nn.functional.normalize(x, dim=-1)
    pairs = [float(u[i] @ u[j]) for i in range(7) for j in range(7) if i != j]
    assert abs(probe_layers.mean_cosine(x) - sum(pairs) / len(pairs)) < 1e-6
    # a constant offset with a tiny signal (the bottom [CLS] vectors): the same direction for every input
    const, _ = _data(scale=1e-3)
    assert probe_layers.mean_cosine(const) > 0.999
    assert abs(probe_layers.mean_cosine(torch.randn(2000, 16, generator=g))) < 0.01
