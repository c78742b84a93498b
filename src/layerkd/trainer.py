"""The one training loop: fine-tuning a teacher, distilling a student, training an assistant and
fitting pseudo classifiers are all this loop with different recipes and frozen parts.

Built on Hugging Face Accelerate (mixed precision, DDP across processes). Features: AdamW with
linear warm-up and decay, gradient accumulation, clipping, evaluation every epoch and every N
steps, best checkpoint by the task's main metric, early stopping, exact ``resume`` from the last
valid checkpoint (data order, RNG, optimizer, scheduler, recipe phase and objective state), a
JSONL metrics log with every loss term, experiment trackers (:mod:`layerkd.tracking`), a finite-loss guard.

Multi-process: every process sees its interleaved slice of the same global batches (see
:class:`~layerkd.data.batching.LengthGroupedBatchSampler`); evaluation
(:mod:`layerkd.evaluation`) scores each example exactly once; only the main process writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from . import faults, jsonio
from .config import TrainConfig
from .data.batching import Batch, LengthGroupedBatchSampler
from .data.encoding import EncodedSplit
from .errors import ConfigError, NonFiniteLossError
from .evaluation import EvalResult, score_split
from .models.trace import Trace
from .objectives.base import Needs
from .optim import build_adamw
from .recipe import Recipe
from .tasks import Task
from .tracking import Tracking
from .trainer_checkpoints import CheckpointMixin
from .trainer_selection import SelectionMixin

log = logging.getLogger("layerkd")


def _allow_new_precision(mp: str) -> None:
    """Accelerate keeps one global state per process; several single-process runs in one Python
    process (a benchmark suite, the test-suite) may use different precisions, so a stale
    single-process state is reset. A distributed launch (one run per process) is left alone."""
    from accelerate.state import AcceleratorState, PartialState  # noqa: PLC0415

    if not AcceleratorState._shared_state:
        return
    state = AcceleratorState()
    if state.num_processes == 1 and state.mixed_precision != mp:
        AcceleratorState._reset_state()
        PartialState._reset_state()


def check_engine(distributed_type: str, zero_stage: int | None, resume: bool) -> None:
    """Accelerate configs are passed through unchanged (``accelerate launch --config_file …``);
    refuse the engines whose state layerkd's checkpoints — written by the main process from its
    own copy of the weights and optimizer — cannot hold, instead of hanging or resuming wrongly."""
    kind = str(getattr(distributed_type, "value", distributed_type))
    if kind in ("FSDP", "MEGATRON_LM"):
        raise ConfigError(f"accelerate: {kind} shards the weights across processes, which layerkd's checkpoints do not "
                          "support; launch without it (DDP: accelerate launch --multi_gpu --num_processes N …)")
    if kind == "DEEPSPEED" and (zero_stage or 0) >= 3:
        raise ConfigError("accelerate: DeepSpeed ZeRO stage 3 shards the weights across processes, which layerkd's "
                          "checkpoints do not support; use zero_stage 0-2 or plain DDP (accelerate launch --multi_gpu …)")
    if kind == "DEEPSPEED" and resume:
        raise ConfigError("--resume under DeepSpeed is not supported (the optimizer state is partitioned across "
                          "processes); start a new run, and train with plain DDP (accelerate launch --multi_gpu …) to be able to resume")


class TrainModule(nn.Module):
    """Student and recipe in one module, so that DDP synchronises the objectives' parameters
    (projections, student heads) together with the student's."""

    def __init__(self, student: nn.Module, recipe: Recipe):
        super().__init__()
        self.student = student
        self.recipe = recipe

    def forward(self, batch: Batch, teacher: Trace | None, needs: Needs):
        trace = self.student(batch.inputs["student"], hidden_states=needs.student_hidden, attentions="attentions" in needs.student)
        total, terms = self.recipe(trace, teacher, batch)
        return total, terms


@dataclass
class TrainState:
    epoch: int = 0  # epoch to run next (or being run)
    position: int = 0  # global batches of `epoch` already done
    global_step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    best_epoch: int = -1
    bad_evals: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    log_offset: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0


class Trainer(CheckpointMixin, SelectionMixin):
    def __init__(
        self,
        *,
        student: nn.Module,
        recipe: Recipe,
        task: Task,
        train_data: EncodedSplit,
        eval_data: EncodedSplit,
        config: TrainConfig,
        test_data: EncodedSplit | None = None,
        output_dir: Path,
        teacher: Any = None,  # a layerkd.teacher.TeacherProvider (None: no teacher, e.g. fine-tuning)
        config_hash: str = "",
        extra_eval: dict[str, EncodedSplit] | None = None,
        progress: bool = True,
        diagnostics: Any = None,  # callable(trainer, best_module) -> dict, run at the end
        evaluator: Any = None,  # callable(trainer, module, data) -> EvalResult (default: score the student)
        inputs: dict[str, Any] | None = None,  # the run's input fingerprints, recorded in checkpoints (layerkd.run_inputs)
        label: str | None = None,  # names the run in progress and evaluation lines (default: finetune / distill)
    ):
        from accelerate import Accelerator  # noqa: PLC0415
        from accelerate.utils import DistributedDataParallelKwargs  # noqa: PLC0415

        self.cfg = config
        self.task = task
        self.train_data = train_data
        self.eval_data = eval_data  # serves every choice (best epoch, early stopping)
        self.test_data = test_data  # scored once at the end, at the selected and the last epoch
        self.extra_eval = extra_eval or {}
        self.output_dir = Path(output_dir)
        self.ckpt_dir = self.output_dir / "checkpoints"
        self.teacher = teacher
        self.evaluator = evaluator
        self.config_hash = config_hash
        self.inputs = inputs
        self.diagnostics = diagnostics
        mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[config.precision]
        _allow_new_precision(mp)
        self.tracking = Tracking.for_run(config, self.output_dir)  # --report-to (layerkd.tracking)
        self.accelerator = Accelerator(
            mixed_precision=mp,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
            cpu=not torch.cuda.is_available(),
            log_with=self.tracking.trackers or None,
            project_dir=str(self.output_dir),
        )
        self.is_main = self.accelerator.is_main_process
        self.device = self.accelerator.device
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.module = TrainModule(student, recipe)
        self.recipe = recipe
        self.progress = progress and self.is_main  # a terminal display or plain lines: layerkd.progress
        self.label = label or ("distill" if teacher is not None else "finetune")
        self.state = TrainState()
        world = self.accelerator.num_processes
        self.sampler = LengthGroupedBatchSampler(
            train_data.lengths, config.batch_size, seed=config.seed, shuffle=True,
            group_by_length=config.group_by_length, num_shards=world, shard_index=self.accelerator.process_index,
        )
        self.steps_per_epoch = len(self.sampler.global_batches(0))
        if self.steps_per_epoch == 0:
            raise RuntimeError("empty training set")
        self.total_steps = config.max_steps or self.steps_per_epoch * config.epochs

    # ------------------------------------------------------------------ optimisation set-up
    def _optimizer(self) -> torch.optim.Optimizer:
        return build_adamw(self.module.named_parameters(), self.cfg)  # train.optimizer_impl: layerkd.optim

    def _scheduler(self, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        total = max(1, self.total_steps)
        warm = int(self.cfg.warmup_ratio * total)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / max(1, warm)
            return max(0.0, (total - step) / max(1, total - warm))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    # ------------------------------------------------------------------ logging
    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        record = {"time": round(time.time(), 3), **record}
        with ckpt.disk_space_guard(self.output_dir / "log.jsonl", self.output_dir), \
                open(self.output_dir / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(jsonio.dumps(record) + "\n")
        self.tracking.log(self.accelerator, record)

    def _log_size(self) -> int:
        p = self.output_dir / "log.jsonl"
        return p.stat().st_size if p.exists() else 0

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, data: EncodedSplit, module: TrainModule | None = None) -> EvalResult:
        """Score ``data`` (by default: the student's predictions, each example exactly once)."""
        module = module or self.accelerator.unwrap_model(self.module)
        if self.evaluator is not None:
            return self.evaluator(self, module, data)
        return self.score_outputs(data, lambda batch: module.student(batch.inputs["student"]).require_logits(), module)

    def score_outputs(self, data: EncodedSplit, outputs_fn, model: nn.Module, metric_prefix: str = "") -> EvalResult:
        """Run ``outputs_fn(batch) -> [B, C]`` over ``data`` and compute the task's metrics (see
        :func:`layerkd.evaluation.score_split`)."""
        return score_split(data, outputs_fn, model, task=self.task, accelerator=self.accelerator, batch_size=self.cfg.eval_batch_size,
                           metric_prefix=metric_prefix, progress=self.progress, label=f"{self.label}: eval {data.split.name}")

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> dict[str, Any]:
        try:
            result = self._fit(resume)
        except BaseException:  # the trackers' runs end as failed (W&B exit code 1, MLflow FAILED)
            self.tracking.end(self.accelerator, failed=True)
            raise
        self.tracking.end(self.accelerator, result, step=self.state.global_step)  # final metrics, layer attention
        return result

    def _fit(self, resume: bool) -> dict[str, Any]:
        cfg = self.cfg
        # one seed per process (dropout masks must differ between the shards of a global batch);
        # a single-process run uses the seed itself
        seed = cfg.seed + self.accelerator.process_index
        torch.manual_seed(seed)
        np.random.seed(seed % (2**32))
        import random as _random  # noqa: PLC0415

        _random.seed(seed)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        optimizer = self._optimizer()
        scheduler = self._scheduler(optimizer)
        self._pending_rng = None
        self._pending_objective_state = None
        ds = getattr(self.accelerator.state, "deepspeed_plugin", None)
        check_engine(self.accelerator.distributed_type, getattr(ds, "zero_stage", None), resume)
        resumed = self._resume(optimizer, scheduler) if resume else False
        module, optimizer = self.accelerator.prepare(self.module, optimizer)
        self.tracking.start(self.accelerator, {**cfg.model_dump(mode="json"), "task": self.task.name, "stage": self.label,
                                               "config_hash": self.config_hash})
        t0 = time.time()
        if not resumed:
            self._log({"event": "start", "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                       "phases": self.recipe.describe(), "processes": self.accelerator.num_processes})
        from .progress import track  # noqa: PLC0415

        with track(self.label, self.total_steps, completed=self.state.global_step, epochs=cfg.epochs,
                   enabled=self.progress) as bar:
            while self.state.epoch < cfg.epochs and self.state.global_step < self.total_steps and not self.state.stopped_early:
                self._run_epoch(module, optimizer, scheduler, bar)
        return self._finish(time.time() - t0)

    def _teacher(self, needs: Needs, data: EncodedSplit | None = None):
        if not needs.needs_teacher:
            return None
        if self.teacher is None:
            raise RuntimeError("the recipe needs a teacher but none was given")
        return self.teacher.source(needs, self.device, data if data is not None else self.train_data)

    def _run_epoch(self, module, optimizer, scheduler, bar) -> None:
        cfg, st = self.cfg, self.state
        epoch = st.epoch
        starting_fresh = st.position == 0
        info = self.recipe.start_epoch(epoch)
        if self._pending_objective_state:  # mid-epoch resume: objective state as of the checkpoint
            for k, s in self._pending_objective_state.items():
                if k in self.recipe.objectives:
                    self.recipe.objectives[k].load_extra_state_dict(s)
            self._pending_objective_state = None
        if starting_fresh:
            st.epoch_loss_sum, st.epoch_loss_count = 0.0, 0
            self._log({"event": "epoch_start", "epoch": epoch, "step": st.global_step, **info})
        if self._pending_rng is not None:
            ckpt.restore_rng(*self._pending_rng)
            self._pending_rng = None
        needs = self.recipe.needs()
        teacher = self._teacher(needs)
        batches = self.sampler.batches(epoch)
        world = self.accelerator.num_processes
        global_sizes = [max(len(b), world) for b in self.sampler.global_batches(epoch)] if world > 1 else []
        module.train()
        accum_terms: dict[str, torch.Tensor] = {}
        accum_count = 0
        micro = cfg.grad_accum
        params = [p for p in module.parameters() if p.requires_grad]
        for pos in range(st.position, len(batches)):
            if st.global_step >= self.total_steps:
                break
            self.recipe.start_step()
            local = batches[pos]
            # DDP averages gradients over processes; scaling each process's loss by world × its share
            # of the global batch makes the update the global batch's mean even when shards differ
            scale = len(local) * world / global_sizes[pos] if world > 1 else 1.0
            chunks = [local[i::micro] for i in range(micro)] if micro > 1 else [local]
            chunks = [c for c in chunks if c]
            total_value = torch.zeros((), device=self.device)
            step_terms: dict[str, torch.Tensor] = {}
            for ci, chunk in enumerate(chunks):
                batch = self.train_data.batch(chunk).to(self.device)  # vectorised collate
                teacher_trace = teacher.trace(batch, needs) if teacher is not None else None
                sync = ci == len(chunks) - 1
                ctx = self.accelerator.no_sync(module) if not sync else contextlib.nullcontext()
                with ctx:
                    with self.accelerator.autocast():
                        loss, terms = module(batch, teacher_trace, needs)
                    share = len(chunk) / len(local)
                    self.accelerator.backward(loss * (share * scale))
                total_value = total_value + loss.detach().float() * share
                for k, v in terms.items():
                    step_terms[k] = step_terms.get(k, 0.0) + v.detach().float() * share
            if world > 1:  # the global batch's loss and terms, the same numbers in every process
                keys = sorted(step_terms)
                vec = torch.stack([total_value, *(step_terms[k] for k in keys)]) * (scale / world)
                vec = self.accelerator.reduce(vec, "sum")
                total_value, step_terms = vec[0], {k: vec[i + 1] for i, k in enumerate(keys)}
            faults.point("step")  # test-only fault injection (LAYERKD_FAULT)
            if not self._finite(total_value, step_terms, optimizer):
                continue_run = cfg.nonfinite == "skip"
                if not continue_run:
                    bad = [k for k, v in step_terms.items() if not torch.isfinite(v)]
                    raise NonFiniteLossError(
                        f"non-finite loss at step {st.global_step + 1} (epoch {epoch}) from objective "
                        f"{', '.join(bad) or 'total'}; lower the learning rate or set train.nonfinite: skip"
                    )
                self._log({"event": "skipped_step", "step": st.global_step + 1, "epoch": epoch,
                           "terms": {k: float(v) for k, v in step_terms.items()}})
                optimizer.zero_grad(set_to_none=True)
                st.position = pos + 1
                continue
            if cfg.max_grad_norm is not None:
                self.accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            st.global_step += 1
            st.position = pos + 1
            accum_count += 1
            for k, v in step_terms.items():
                accum_terms[k] = accum_terms.get(k, 0.0) + v
            accum_terms["loss"] = accum_terms.get("loss", 0.0) + total_value
            bar.update(st.global_step, epoch=epoch + 1, loss=total_value, terms=step_terms,
                       phase=self.recipe.phase.name if len(self.recipe.phases) > 1 else None)
            if st.global_step % cfg.log_every_steps == 0:
                self._flush_train_log(accum_terms, accum_count, scheduler, epoch)
                accum_terms, accum_count = {}, 0
            if cfg.eval_every_steps and st.global_step % cfg.eval_every_steps == 0 and st.position < len(batches):
                self._evaluate_and_track(epoch, end_of_epoch=False)
                module.train()
                if st.stopped_early:
                    break
            if cfg.checkpoint_every_steps and st.global_step % cfg.checkpoint_every_steps == 0 and st.position < len(batches):
                self._save_checkpoint(optimizer, scheduler)
        if accum_count:
            self._flush_train_log(accum_terms, accum_count, scheduler, epoch)
        # end of epoch
        if not st.stopped_early:
            self._evaluate_and_track(epoch, end_of_epoch=True)
        mean_loss = st.epoch_loss_sum / max(1, st.epoch_loss_count)
        mean_loss = float(self.accelerator.reduce(torch.tensor(mean_loss, device=self.device), "mean"))
        new_phase = self.recipe.end_epoch(epoch, mean_loss)
        if new_phase is not None:
            self._log({"event": "phase", "epoch": epoch + 1, "step": st.global_step, "phase": new_phase.name,
                       "weights": new_phase.weights, "options": new_phase.options})
        st.epoch += 1
        st.position = 0
        self._save_checkpoint(optimizer, scheduler)

    def _finite(self, total: torch.Tensor, terms: dict[str, torch.Tensor], optimizer) -> bool:
        finite = bool(torch.isfinite(total).item())  # with several processes `total` is already the global loss
        if finite:
            self.state.epoch_loss_sum += float(total)
            self.state.epoch_loss_count += 1
        return finite

    def _flush_train_log(self, accum, count, scheduler, epoch) -> None:
        rec = {"event": "train", "step": self.state.global_step, "epoch": epoch, "phase": self.recipe.phase.name,
               "lr": scheduler.get_last_lr()[0]}
        for k, v in accum.items():
            rec[k if k == "loss" else f"term/{k}"] = float(v) / count
        self._log(rec)

