"""Linear probes on a teacher's layers: how much label each layer's pooled vector carries.

A check on the pseudo classifiers of `universal` / `dih` (the `fit-teacher-heads` stage), run
independently of layerkd's training loop: for every encoder layer, fit an L2-regularised logistic
regression (full-batch L-BFGS on z-scored features) on `--n-train` training rows and score it on
the whole dev split, once on the `[CLS]` vector and once on the masked mean of the tokens. It also
prints the mean per-dimension standard deviation of the `[CLS]` vectors on dev: a near-zero value
means the vector is (almost) the same for every input.

`--spread-only` skips the probes (so it also takes regression tasks) and reports, per layer and for
both poolings, the scale-free spread that L2-normalised layer losses see: the mean cosine
similarity between the vectors of the first `--n-train` training inputs (1 = the same direction for
every input; training rows, so that the choice it informs never looks at the test set) — the check
that decides which layer vector the v2 suites match (`benchmarks/results/calibration.md`).

    python benchmarks/probe_layers.py --teacher ../layerkd-work/teachers-v2/sts-b --task sts-b \
        --data-dir ../shared/data/glue --spread-only --out benchmarks/results/spread-sts-b.json

    python benchmarks/probe_layers.py --teacher ../layerkd-work/teachers/sst-2 --task sst-2 \
        --data-dir ../shared/data/glue --n-train 2000 --out benchmarks/results/probe-sst-2.json

Probes: classification tasks only. One thread by default (`OMP_NUM_THREADS` / `--threads`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import transformers

from layerkd.data.readers import read_split
from layerkd.models.load import load_model
from layerkd.models.pooling import pool_layers
from layerkd.tasks import get_task


def layer_features(model, tokenizer, examples, max_length: int, batch_size: int = 64):
    """Per layer 1..n: ([CLS] vectors, masked-mean vectors), each [N, d]."""
    cls: dict[int, list[torch.Tensor]] = {}
    mean: dict[int, list[torch.Tensor]] = {}
    for i in range(0, len(examples), batch_size):
        batch = examples[i:i + batch_size]
        a = [e.text_a for e in batch]
        b = [e.text_b for e in batch] if batch[0].text_b is not None else None
        enc = tokenizer(a, b, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        by_mode = {mode: pool_layers(hidden, enc["attention_mask"], mode) for mode in ("cls", "mean")}  # [B, L+1, d]
        for layer in range(1, len(hidden)):
            cls.setdefault(layer, []).append(by_mode["cls"][:, layer])
            mean.setdefault(layer, []).append(by_mode["mean"][:, layer])
    return ({k: torch.cat(v) for k, v in cls.items()}, {k: torch.cat(v) for k, v in mean.items()})


def mean_cosine(x: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of distinct rows of ``x`` [N, d] (1 = one direction for all)."""
    u = torch.nn.functional.normalize(x.double(), dim=-1)
    n = u.shape[0]
    total = u.sum(0).pow(2).sum() - n  # Σ_{i≠j} u_i·u_j = ‖Σ u‖² − Σ ‖u_i‖²
    return (total / (n * (n - 1))).item()


def probe(x_train, y_train, x_dev, y_dev, num_labels: int, l2: float = 1e-3, steps: int = 200) -> float:
    """Dev accuracy of a logistic regression fitted on z-scored features."""
    mu, sd = x_train.mean(0), x_train.std(0).clamp_min(1e-8)
    xt, xd = (x_train - mu) / sd, (x_dev - mu) / sd
    lin = torch.nn.Linear(xt.shape[1], num_labels)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt), y_train) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (lin(xd).argmax(-1) == y_dev).float().mean().item()


def spread_rows(model, tok, examples, max_length: int) -> list[dict]:
    """Per layer: mean pairwise cosine and mean per-dimension std of the [CLS] and the mean vectors."""
    cls, mean = layer_features(model, tok, examples, max_length)
    return [{"layer": k, "cls_mean_cosine": mean_cosine(cls[k]), "mean_mean_cosine": mean_cosine(mean[k]),
             "cls_std": cls[k].std(0).mean().item(), "mean_std": mean[k].std(0).mean().item()} for k in sorted(cls)]


def probe_rows(model, tok, train, dev, num_labels: int, max_length: int) -> tuple[list[dict], float]:
    """Per layer: dev accuracy of a probe on the [CLS] and on the mean vectors; and the majority-class accuracy."""
    cls_t, mean_t = layer_features(model, tok, train, max_length)
    cls_d, mean_d = layer_features(model, tok, dev, max_length)
    y_train = torch.tensor([int(e.label) for e in train])
    y_dev = torch.tensor([int(e.label) for e in dev])
    rows = [{"layer": k,
             "cls_accuracy": probe(cls_t[k], y_train, cls_d[k], y_dev, num_labels),
             "mean_accuracy": probe(mean_t[k], y_train, mean_d[k], y_dev, num_labels),
             "cls_std": cls_d[k].std(0).mean().item()} for k in sorted(cls_t)]
    return rows, max((y_dev == c).float().mean().item() for c in y_dev.unique())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True, help="a fine-tuned Hugging Face encoder folder")
    ap.add_argument("--task", required=True)
    ap.add_argument("--data-dir", required=True, help="GLUE folder")
    ap.add_argument("--n-train", type=int, default=2000, help="first N training rows (default 2000)")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="also write the numbers as JSON here")
    ap.add_argument("--spread-only", action="store_true",
                    help="no probes: the mean pairwise cosine of each layer's [CLS] and mean vectors over the first "
                         "--n-train training rows (any task)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    if task.is_regression and not args.spread_only:
        print(f"--task {args.task}: probes are for classification tasks (--spread-only takes any task)", file=sys.stderr)
        return 2
    start = time.time()
    loaded = load_model(args.teacher)  # layerkd's loader: v2 (mean-pooled) teachers open without remote code
    model, tok = loaded.hf.eval(), loaded.tokenizer
    train = read_split(task, "train", data_dir=args.data_dir).examples[: args.n_train]
    if args.spread_only:
        dev, majority = [], None
        rows = spread_rows(model, tok, train, args.max_length)
        print(f"{task.name}: {len(train)} training rows; mean pairwise cosine of each layer's vectors")
        print("layer  cls_cos  mean_cos  cls_std  mean_std")
        for r in rows:
            print(f"{r['layer']:>5}  {r['cls_mean_cosine']:.4f}   {r['mean_mean_cosine']:.4f}   {r['cls_std']:.4f}   "
                  f"{r['mean_std']:.4f}")
    else:
        dev = read_split(task, "dev", data_dir=args.data_dir).examples
        rows, majority = probe_rows(model, tok, train, dev, task.num_labels, args.max_length)
        print(f"{task.name}: {len(train)} training rows, {len(dev)} dev rows; majority-class dev accuracy {majority:.4f}")
        print("layer  cls_acc  mean_acc  cls_std")
        for r in rows:
            print(f"{r['layer']:>5}  {r['cls_accuracy']:.4f}   {r['mean_accuracy']:.4f}    {r['cls_std']:.4f}")
    if args.out:
        out = {
            "command": "python benchmarks/probe_layers.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "task": task.name, "n_train": len(train), "n_dev": len(dev), "majority_accuracy": majority,
            "layers": rows, "seconds": round(time.time() - start, 1),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "transformers": transformers.__version__},
            "machine": f"{platform.machine()}, {torch.get_num_threads()} thread(s)",
        }
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
