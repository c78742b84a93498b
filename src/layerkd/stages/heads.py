"""Stage ``fit-teacher-heads``: pseudo classifiers on the frozen teacher's layers.

The heads (one linear classifier per chosen layer, :class:`~layerkd.models.heads.LayerHeads`) are
trained by the same training loop as everything else: the "student" is empty, the only
trainable parameters are the heads inside a :class:`ProbeObjective`, and the frozen teacher's
layer vectors come from the teacher source (the cache when enabled). The best epoch is chosen by
the mean dev score over heads; each head's dev score is reported (``heads.json``), which is the
per-layer analysis of Universal-KD's Fig. 3.

Fitted heads are stored in the cache directory keyed by (teacher fingerprint, training data,
options, seed) and reused by later runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import write_dir_atomically
from ..config import HeadsFitConfig, TrainConfig, hashable_dump
from ..data.batching import ordered_batches
from ..data.encoding import EncodedSplit
from ..errors import ConfigError, ModelError
from ..evaluation import EvalResult
from ..metrics import compute_metrics, predictions_from_outputs
from ..models.heads import LayerHeads
from ..models.trace import Trace
from ..objectives.base import BuildContext, Needs, Objective, Options
from ..recipe import Phase, Recipe
from ..tasks import Task
from ..teacher import TeacherProvider
from ..trainer import Trainer

log = logging.getLogger("layerkd")


class NullStudent(nn.Module):
    """A student with no parameters (the heads stage trains only the objective's heads)."""

    def forward(self, inputs, *, hidden_states=False, attentions=False) -> Trace:
        return Trace(source="none")


class ProbeObjective(Objective):
    """Gold-label loss of every head on the teacher's (frozen) layer vectors, averaged over heads."""

    name = "probe"

    def __init__(self, heads: LayerHeads, ctx: BuildContext):
        super().__init__(Options(), ctx)
        self.heads = heads

    @property
    def needs(self) -> Needs:
        return Needs(teacher=frozenset({"layer_vectors"}), teacher_poolings=frozenset({self.heads.pooling}))

    def outputs(self, teacher: Trace) -> torch.Tensor:
        return self.heads(teacher.layer_vectors(self.heads.pooling).float())  # [B, k, C]

    def forward(self, student, teacher, batch) -> torch.Tensor:
        z = self.outputs(teacher)
        k = z.shape[1]
        if self.ctx.regression:
            return F.mse_loss(z[..., 0], batch.labels.float()[:, None].expand(-1, k))
        return F.cross_entropy(z.flatten(0, 1), batch.labels.repeat_interleave(k))


def head_layers(spec, num_layers: int) -> list[int]:
    if spec == "intermediate":
        layers = list(range(1, num_layers))
    elif spec == "all":
        layers = list(range(1, num_layers + 1))
    else:
        layers = sorted({int(i) for i in spec})
    if not layers:
        raise ConfigError(f"teacher.fit_heads.layers: a {num_layers}-layer teacher has no intermediate layer to put a head on")
    bad = [i for i in layers if not 1 <= i <= num_layers]
    if bad:
        raise ConfigError(f"teacher.fit_heads.layers: layer {bad[0]} is out of the teacher's range 1..{num_layers}")
    return layers


def heads_key(teacher_fp: str, train: EncodedSplit, cfg: HeadsFitConfig, seed: int, max_length: int) -> str:
    payload = {"teacher": teacher_fp, "data": train.fingerprint, "fit": hashable_dump(cfg, at=("teacher", "fit_heads")),
               "seed": seed, "max_length": max_length}
    if cfg.standardize:  # heads standardised before the scale floor (LayerHeads.set_standardization) are never reused
        payload["scale_floor"] = "fp16-resolution"
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _layer_stats(trainer: Trainer, probe: ProbeObjective, data: EncodedSplit) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) std of every head's input over the training split, each [k, d] (float64 sums)."""
    source = trainer.teacher.source(probe.needs, trainer.device, data)
    index = torch.tensor(probe.heads.layers, dtype=torch.long)
    total = total_sq = 0.0
    with torch.no_grad():
        for batch in ordered_batches(data, trainer.cfg.eval_batch_size, trainer.device):
            vectors = source.trace(batch, probe.needs).layer_vectors(probe.heads.pooling)
            x = vectors.index_select(1, index.to(vectors.device)).double().cpu()  # [B, k, d]
            total, total_sq = total + x.sum(0), total_sq + x.pow(2).sum(0)
    mean = total / len(data)
    std = (total_sq / len(data) - mean.pow(2)).clamp_min(0).sqrt()
    return mean.float(), std.float()


def _probe_evaluator(task: Task):
    def evaluate(trainer: Trainer, module, data: EncodedSplit) -> EvalResult:
        probe: ProbeObjective = module.recipe.objectives["probe"]
        source = trainer.teacher.source(probe.needs, trainer.device, data)
        module.eval()
        outs = torch.zeros(len(data), len(probe.heads.layers), task.num_labels)
        with torch.no_grad():
            for batch in ordered_batches(data, trainer.cfg.eval_batch_size, trainer.device):
                outs[batch.index.cpu()] = probe.outputs(source.trace(batch, probe.needs)).float().cpu()
        gold = data.labels.numpy()
        metrics: dict[str, float] = {}
        mains = []
        for j, layer in enumerate(probe.heads.layers):
            preds = predictions_from_outputs(outs[:, j].numpy(), task.is_regression)
            m = compute_metrics(task.metrics, preds, gold)
            mains.append(m[task.main_metric])
            metrics.update({f"layer{layer}/{k}": v for k, v in m.items()})
        mean_main = float(sum(mains) / len(mains))
        metrics[task.main_metric] = mean_main
        metrics["_main"] = mean_main
        module.train()
        return EvalResult(metrics, outs[:, -1].numpy(), predictions_from_outputs(outs[:, -1].numpy(), task.is_regression))

    return evaluate


def fit_teacher_heads(
    *,
    teacher: nn.Module,
    task: Task,
    train: EncodedSplit,
    dev: EncodedSplit,
    cfg: HeadsFitConfig,
    seed: int,
    max_length: int,
    work_dir: Path,
    cache_root: Path | None,
    teacher_fp: str,
    cache=None,
    progress: bool = True,
) -> tuple[LayerHeads, dict]:
    """Fit (or load from the cache) the teacher's pseudo classifiers; returns heads and their report.
    Its progress and evaluation lines are labelled ``teacher heads fit`` (``progress=False``: none)."""
    info = teacher.info
    layers = head_layers(cfg.layers, info.num_layers)
    key = heads_key(teacher_fp, train, cfg, seed, max_length)
    cached_dir = cache_root / "heads" / key if cache_root is not None else None
    if cached_dir is not None and (cached_dir / "heads.json").exists():
        try:
            heads = LayerHeads.load(cached_dir)
            report = json.loads((cached_dir / "heads.json").read_text())
            log.info("teacher heads: reusing %s", cached_dir)
            return heads, report
        except ModelError as exc:
            log.warning("teacher heads in %s unreadable (%s); refitting", cached_dir, exc)
    heads = LayerHeads(layers, info.hidden_size, task.num_labels, pooling=cfg.pooling, dropout=cfg.dropout,
                       standardize=cfg.standardize)
    ctx = BuildContext(student=info, teacher=info, num_labels=task.num_labels, regression=task.is_regression, seed=seed)
    probe = ProbeObjective(heads, ctx)
    recipe = Recipe({"probe": probe}, [Phase(name="heads", weights={"probe": 1.0})], cfg.epochs)
    train_cfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, weight_decay=0.0, warmup_ratio=0.0,
                            max_length=max_length, seed=seed, max_grad_norm=None, keep_checkpoints=1)
    provider = TeacherProvider(teacher, None, cache=cache)
    log.info("fitting teacher pseudo classifiers on layers %s (%d epochs)", layers, cfg.epochs)
    trainer = Trainer(student=NullStudent(), recipe=recipe, task=task, train_data=train, eval_data=dev, config=train_cfg,
                      output_dir=work_dir, teacher=provider, evaluator=_probe_evaluator(task), progress=progress,
                      label="teacher heads fit")
    if cfg.standardize:
        heads.set_standardization(*_layer_stats(trainer, probe, train))
    result = trainer.fit()
    best_heads: LayerHeads = trainer.best_module.recipe.objectives["probe"].heads
    scores = {str(layer): trainer.best_eval.metrics[f"layer{layer}/{task.main_metric}"] for layer in layers}
    report = {"layers": layers, "metric": task.main_metric, "dev_scores": scores, "teacher": teacher_fp, "key": key,
              "epochs": cfg.epochs, "best_epoch": result["best_epoch"], "dev_metrics": result["best"]}
    if cached_dir is not None:
        if trainer.is_main:  # one writer when several processes fit the heads together
            write_dir_atomically(cached_dir, lambda tmp: best_heads.save(tmp, extra=report))
        trainer.accelerator.wait_for_everyone()
    best_heads.eval()
    return best_heads, report
