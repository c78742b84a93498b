"""``DistillationTrainer``: layerkd's recipes inside a ``transformers.Trainer`` (see ``docs/integrations.md``).

The student is any Hugging Face sequence classifier and stays what the ``Trainer`` trains, saves
and evaluates; ``TrainingArguments``, callbacks, ``compute_metrics`` and the ``Trainer``'s own
loop, logging and checkpointing work as usual. What layerkd adds is the loss: ``compute_loss``
builds the student's :class:`~layerkd.models.trace.Trace` and the teacher's (live, or from the
teacher cache), and calls the recipe — the same recipe, batches and teacher signals as
``layerkd distill`` (a test checks that the first step's loss terms are the CLI's).

Decisions:

* **Data**: ``train_dataset`` / ``eval_dataset`` are ``datasets.Dataset`` objects (or lists of
  dict rows) holding the task's text columns and label column as raw text; each model tokenises
  them with its own tokenizer (:mod:`layerkd.integrations.hf_data`), so teacher and student may
  come from different families. The trainer supplies its own collator (``data_collator`` is not
  accepted) and keeps every column (``remove_unused_columns`` is set to False on a copy of ``args``).
* **Teacher cache** (``cache=True``, the CLI's default): rows are identified by their index in the
  dataset given to the trainer; the entry's key covers the teacher's token ids of every row, so a
  changed dataset gets a new entry. Recipes that need all-token states or attention maps run the
  teacher live, as in the CLI.
* **Teacher pseudo classifiers** (``universal``, ``dih``): given as a fitted directory
  (``teacher_heads=``), or fitted before training with :func:`layerkd.stages.heads.fit_teacher_heads`
  (``heads_fit=`` settings; an ``eval_dataset`` is required to choose their epoch); work files go to
  ``args.output_dir/teacher_heads_run``, the fitted heads to ``args.output_dir/teacher_heads``.
* **The recipe's own parameters** (projections, student heads) are trained in an extra optimizer
  group, with ``args.weight_decay``, but are not part of the saved model or of gradient clipping,
  and a ``resume_from_checkpoint`` re-initialises them; with several processes they would not be
  synchronised, so that case is refused (use ``layerkd distill`` under ``accelerate launch``).
* **Schedules** (multi-phase recipes) count epochs with the ``Trainer``'s epochs; their budget is
  ``ceil(args.num_train_epochs)``. Multi-stage pipelines (``takd``) are refused.
* Loss terms are logged with the ``Trainer``'s loss as ``term/<objective>`` (unweighted means
  since the last log line).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

from ..config import HeadsFitConfig, RecipeConfig
from ..data.encoding import EncodedSplit
from ..errors import ConfigError, PairError
from ..methods import Method, resolve_method
from ..metrics import compute_metrics, predictions_from_outputs
from ..models.trace import Trace
from ..models.transformer import TransformerClassifier
from ..objectives.base import BuildContext, Needs
from ..recipe import build_recipe
from ..tasks import Task, task_from_config
from ..teacher import TeacherProvider
from .hf_data import RowCollator, RowIndex, split_from_dataset

HEAD_OBJECTIVES = frozenset({"universal", "dih"})


def resolve_recipe(recipe: str | dict | RecipeConfig) -> Method:
    """A preset or ``a+b`` combination (as ``--method``), or a recipe mapping (as a config's ``recipe:``)."""
    if isinstance(recipe, str):
        method = resolve_method(recipe)
    else:
        cfg = recipe if isinstance(recipe, RecipeConfig) else RecipeConfig.model_validate(recipe)
        method = Method("custom", "recipe given to DistillationTrainer", cfg)
    if method.pipeline is not None:
        raise ConfigError(f"DistillationTrainer: method {method.name!r} is a multi-stage pipeline ({method.pipeline}); "
                          "run it with layerkd distill")
    return method


def _tokenizer_of(model, given, who: str):
    if given is not None:
        return given
    from transformers import AutoTokenizer  # noqa: PLC0415

    where = getattr(getattr(model, "config", None), "_name_or_path", "")
    if not where:
        raise ConfigError(f"DistillationTrainer: give the {who}'s tokenizer (its model has no _name_or_path to load it from)")
    return AutoTokenizer.from_pretrained(where)


def _teacher_model(teacher, task: Task, tokenizer):
    """A layerkd model (``.info``, ``.text_encoder``): loaded from a directory, or wrapped."""
    if isinstance(teacher, (str, Path)):
        from ..models.load import load_model  # noqa: PLC0415

        return load_model(str(teacher), task, require_head=True)
    if hasattr(teacher, "info") and hasattr(teacher, "text_encoder"):
        return teacher
    return TransformerClassifier(teacher, _tokenizer_of(teacher, tokenizer, "teacher"))


def task_metrics(task: Task):
    """A ``compute_metrics`` for the ``Trainer`` that reports the task's metrics (layerkd.metrics)."""

    def compute(pred) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        return compute_metrics(task.metrics, predictions_from_outputs(logits, task.is_regression), pred.label_ids)

    return compute


class _RecipeSchedule(TrainerCallback):
    """Drives the recipe's epoch and step hooks (phases, RAIL's draws) from the Trainer's loop."""

    def __init__(self):
        self.trainer: DistillationTrainer | None = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.trainer.recipe.start_epoch(self.trainer.epoch)

    def on_step_begin(self, args, state, control, **kwargs):
        self.trainer.recipe.start_step()

    def on_epoch_end(self, args, state, control, **kwargs):
        t = self.trainer
        t.recipe.end_epoch(t.epoch, t._epoch_loss[0] / max(1, t._epoch_loss[1]))
        t.epoch, t._epoch_loss = t.epoch + 1, [0.0, 0]


class DistillationTrainer(Trainer):
    """A ``transformers.Trainer`` whose loss is a layerkd recipe (``"alp"``, ``"universal+rail"`` …)."""

    def __init__(self, model=None, args=None, *, teacher, recipe: str | dict | RecipeConfig = "kd",
                 task: str | dict | Task, train_dataset=None, eval_dataset=None, processing_class=None,
                 teacher_tokenizer=None, teacher_heads: str | Path | None = None,
                 heads_fit: HeadsFitConfig | dict | None = None, cache: bool | str | Path = True,
                 cache_dtype: str = "fp16", max_length: int = 128, compute_metrics=None, callbacks=None, **kwargs):
        if model is None or args is None:
            raise ConfigError("DistillationTrainer: give the student model and TrainingArguments (model_init is not supported)")
        if kwargs.get("data_collator") is not None:
            raise ConfigError("DistillationTrainer: builds its own batches from the datasets' text; do not pass data_collator")
        kwargs.pop("data_collator", None)
        self.task = task if isinstance(task, Task) else task_from_config(task)
        tokenizer = _tokenizer_of(model, processing_class, "student")
        self.student = TransformerClassifier(model, tokenizer)  # shares the model's modules
        self.teacher = _teacher_model(teacher, self.task, teacher_tokenizer)
        from ..stages.distill import check_labels  # noqa: PLC0415

        check_labels(self.task, self.teacher.info, self.student.info)
        self.method = resolve_recipe(recipe)
        heads_cfg = heads_fit if isinstance(heads_fit, HeadsFitConfig) else HeadsFitConfig.model_validate(heads_fit or {})
        layers = self._head_layers(teacher_heads, heads_cfg)
        epochs = max(1, math.ceil(args.num_train_epochs))
        ctx = BuildContext(student=self.student.info, teacher=self.teacher.info, num_labels=self.task.num_labels,
                           regression=self.task.is_regression, seed=args.seed, teacher_head_layers=layers)
        self.recipe = build_recipe(self.method.recipe, ctx, epochs, where=f"method {self.method.name}")
        needs = self.recipe.all_needs()
        if "attentions" in needs.student:
            self.student.use_eager_attention()
            self.student.disable_attention_dropout()
        enc = {"student": self.student.text_encoder}
        if needs.needs_teacher:
            enc["teacher"] = self.teacher.text_encoder
        self._splits: dict[str, EncodedSplit] = {}

        def encode(ds, name):
            if ds is None:
                return None
            self._splits[name] = EncodedSplit(split_from_dataset(self.task, ds, name), enc, max_length, length_role="student")
            return RowIndex(name, self._splits[name])

        train_rows = encode(train_dataset, "train")
        eval_rows = ({k: encode(v, f"eval-{k}") for k, v in eval_dataset.items()} if isinstance(eval_dataset, dict)
                     else encode(eval_dataset, "eval"))
        cache_obj = self._cache(cache, cache_dtype, max_length) if needs.needs_teacher else None
        heads = self._heads(needs, teacher_heads, heads_cfg, args, max_length, cache_obj) if layers else None
        self.provider = TeacherProvider(self.teacher, heads, cache=cache_obj)
        self.epoch, self._epoch_loss, self._terms = 0, [0.0, 0], ({}, 0)
        schedule = _RecipeSchedule()
        args = copy.copy(args)
        args.remove_unused_columns = False  # the rows carry raw text; the collator reads it
        super().__init__(model=model, args=args, data_collator=RowCollator(self._splits), train_dataset=train_rows,
                         eval_dataset=eval_rows, processing_class=tokenizer,
                         compute_metrics=compute_metrics or task_metrics(self.task),
                         callbacks=[*(callbacks or []), schedule], **kwargs)
        schedule.trainer = self
        self.loss_is_scaled_for_ga = False  # the recipe's loss is a per-batch mean
        self.teacher.to(self.args.device)
        self.recipe.to(self.args.device)

    # ------------------------------------------------------------------ set-up helpers
    def _head_layers(self, teacher_heads, heads_cfg: HeadsFitConfig) -> tuple[int, ...]:
        if not any(o.name in HEAD_OBJECTIVES for o in self.method.recipe.objectives):
            return ()
        from ..models.heads import LayerHeads  # noqa: PLC0415
        from ..stages.heads import head_layers  # noqa: PLC0415

        if teacher_heads is not None:
            return LayerHeads.load(teacher_heads).layers
        return tuple(head_layers(heads_cfg.layers, self.teacher.info.num_layers))

    @staticmethod
    def _cache(cache, dtype: str, max_length: int):
        if cache is False or cache is None:
            return None
        from ..teacher_cache import TeacherCache, default_cache_dir  # noqa: PLC0415

        return TeacherCache(default_cache_dir() if cache is True else Path(cache), dtype=dtype, max_length=max_length)

    def _heads(self, needs: Needs, teacher_heads, heads_cfg, args, max_length: int, cache_obj):
        """The teacher's pseudo classifiers: loaded, or fitted now (before the student's first step)."""
        from ..models.heads import LayerHeads  # noqa: PLC0415

        if teacher_heads is not None:
            heads = LayerHeads.load(teacher_heads)
            if heads.width != self.teacher.info.hidden_size or heads.num_labels != self.task.num_labels:
                raise PairError(f"teacher_heads {teacher_heads}: heads of width {heads.width} / {heads.num_labels} labels do "
                                f"not fit this teacher (width {self.teacher.info.hidden_size}, {self.task.num_labels} labels)")
            return heads
        if "train" not in self._splits or not any(k.startswith("eval") for k in self._splits):
            raise ConfigError(f"DistillationTrainer: method {self.method.name} needs the teacher's pseudo classifiers; fitting "
                              "them needs train_dataset and eval_dataset (or pass teacher_heads= a fitted directory)")
        from ..models.fingerprint import model_fingerprint  # noqa: PLC0415
        from ..stages.heads import fit_teacher_heads  # noqa: PLC0415

        dev = next(v for k, v in self._splits.items() if k.startswith("eval"))
        out = Path(args.output_dir)
        heads, report = fit_teacher_heads(
            teacher=self.teacher, task=self.task, train=self._splits["train"], dev=dev, cfg=heads_cfg, seed=args.seed,
            max_length=max_length, work_dir=out / "teacher_heads_run",
            cache_root=cache_obj.root if cache_obj is not None else None, teacher_fp=model_fingerprint(self.teacher),
            cache=cache_obj, progress=False)
        heads.save(out / "teacher_heads", extra=report)
        self.heads_report = report
        return heads

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, plus one group for the recipe's own parameters (projections …)."""
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        params = [p for p in self.recipe.parameters() if p.requires_grad]
        if params and self.args.world_size > 1:
            raise ConfigError(f"DistillationTrainer: method {self.method.name} trains parameters of its own, which are not "
                              "synchronised across processes here; run on one process, or use layerkd distill")
        if params and not any(p is params[0] for g in optimizer.param_groups for p in g["params"]):
            optimizer.add_param_group({"params": params, "weight_decay": self.args.weight_decay})
        return optimizer

    # ------------------------------------------------------------------ the loss
    def _student_trace(self, model, inputs: dict[str, torch.Tensor], needs: Needs) -> Trace:
        attentions = "attentions" in needs.student
        out = model(**inputs, output_hidden_states=needs.student_hidden, output_attentions=attentions, return_dict=True)
        atts = tuple(out.attentions) if attentions and out.attentions is not None else None
        if attentions and not atts:
            raise RuntimeError("student attention probabilities came back empty (the attention kernel does not return them)")
        return Trace(logits=out.logits, attention_mask=inputs.get("attention_mask"),
                     hidden_states=tuple(out.hidden_states) if needs.student_hidden else None, attentions=atts,
                     source=self.student.name or "student")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        batch = inputs["layerkd_batch"]
        data = self._splits[inputs["layerkd_split"]]
        batch = batch.to(self.args.device)
        needs = self.recipe.needs()
        self.recipe.train(model.training)
        student = self._student_trace(model, batch.inputs["student"], needs)
        teacher = self.provider.source(needs, self.args.device, data).trace(batch, needs) if needs.needs_teacher else None
        total, terms = self.recipe(student, teacher, batch)
        if model.training:
            sums, count = self._terms
            self._terms = ({k: sums.get(k, 0.0) + float(v.detach()) for k, v in terms.items()}, count + 1)
            self._epoch_loss = [self._epoch_loss[0] + float(total.detach()), self._epoch_loss[1] + 1]
        return (total, {"logits": student.logits}) if return_outputs else total

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """The Trainer's log line, with each loss term's mean since the last one (``term/<objective>``)."""
        sums, count = self._terms
        if "loss" in logs and count:
            logs = {**logs, **{f"term/{k}": v / count for k, v in sums.items()}}
            self._terms = ({}, 0)
        super().log(logs, *args, **kwargs)
