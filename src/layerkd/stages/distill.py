"""Stage ``distill``: teacher → student with a recipe (and ``takd``'s two stages).

Order of work, so that a bad input costs nothing and leaves nothing behind:

1. read the data, load the teacher, build the student, resolve the method/recipe;
2. build every objective against the pair — each checks its needs (token alignment, head
   counts, layer ranges, widths or projections) and refuses an impossible pair with a message;
3. only then create the output directory, fit/load the teacher's pseudo classifiers if the
   recipe needs them, and train.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_text
from ..config import RunConfig
from ..data.batching import ordered_batches
from ..data.encoding import EncodedSplit
from ..data.readers import Split
from ..errors import CheckpointError, ConfigError, PairError
from ..methods import DEFAULT_METHOD, Method, resolve_method
from ..models.fingerprint import model_fingerprint, module_fingerprint
from ..models.load import apply_pooling, build_student, load_model
from ..objectives.base import BuildContext, Needs
from ..recipe import Recipe, build_recipe
from ..run_finish import finish_run, finished_result
from ..run_inputs import check_resume_inputs, model_input, run_inputs
from ..tasks import Task, task_from_config
from ..teacher import TeacherProvider
from ..trainer import Trainer
from .common import config_hash, is_main_process, load_data, output_directory, seed_everything, write_outputs
from .heads import fit_teacher_heads, head_layers
from .preflight import check_max_length

log = logging.getLogger("layerkd")

HEAD_OBJECTIVES = frozenset({"universal", "dih"})


@dataclass
class Plan:
    task: Task
    train: Split
    dev: Split  # serves every choice (the carved validation split, or the evaluation split)
    extra: dict[str, Split]
    teacher: torch.nn.Module
    student: torch.nn.Module
    method: Method
    recipe: Recipe
    head_layers: tuple[int, ...]
    test: Split | None = None  # scored once at the end (None: ``dev`` is the evaluation split)
    encoded: tuple | None = None  # the encoded splits, made once (_datasets)


def resolve_recipe(cfg: RunConfig) -> Method:
    if cfg.recipe is not None:
        return Method("custom", "recipe from the config", cfg.recipe)
    return resolve_method(cfg.method or DEFAULT_METHOD)


def check_labels(task: Task, teacher_info, student_info) -> None:
    if teacher_info.num_labels != task.num_labels:
        raise PairError(f"teacher has {teacher_info.num_labels} outputs but task {task.name} needs {task.num_labels}")
    if student_info.num_labels != task.num_labels:
        raise PairError(f"student has {student_info.num_labels} outputs but task {task.name} needs {task.num_labels}")


def plan_distill(cfg: RunConfig, *, teacher=None, student_spec: str | None = None, method: Method | None = None,
                 cut_from=None) -> Plan:
    """Everything validated, nothing written. ``cut_from`` is the model that ``layers:``/``bottom:``
    student specs are cut from (default: the teacher)."""
    if cfg.teacher is None or cfg.student is None:
        raise ConfigError("distill: give teacher and student")
    task = task_from_config(cfg.task)
    train, dev, test, extra = load_data(cfg.data, task)
    method = method or resolve_recipe(cfg)
    if teacher is None and cfg.cache.only:  # the teacher's config and tokenizer only (layerkd.cache_only)
        from ..cache_only import TeacherFiles, check_plan  # noqa: PLC0415

        check_plan(cfg, method, student_spec or cfg.student)
        teacher = TeacherFiles(cfg.teacher.path, task, trust_remote_code=cfg.trust_remote_code)
    if teacher is None:
        teacher = load_model(cfg.teacher.path, task, trust_remote_code=cfg.trust_remote_code, require_head=True)
    needs_heads = any(o.name in HEAD_OBJECTIVES for o in method.recipe.objectives)
    layers: tuple[int, ...] = ()
    if needs_heads:
        if cfg.teacher.heads is not None:
            from ..models.heads import LayerHeads  # noqa: PLC0415

            layers = LayerHeads.load(cfg.teacher.heads).layers
        else:
            layers = tuple(head_layers(cfg.teacher.fit_heads.layers, teacher.info.num_layers))
    seed_everything(cfg.train.seed)
    student = build_student(student_spec or cfg.student, cut_from or teacher, task, train_texts=train,
                            trust_remote_code=cfg.trust_remote_code)
    apply_pooling(student, cfg.pooling)
    check_max_length(cfg.train.max_length, "train.max_length", teacher=teacher, student=student)
    check_labels(task, teacher.info, student.info)
    ctx = BuildContext(student=student.info, teacher=teacher.info, num_labels=task.num_labels,
                       regression=task.is_regression, seed=cfg.train.seed, teacher_head_layers=layers)
    recipe = build_recipe(method.recipe, ctx, cfg.train.epochs, where=f"method {method.name}")
    needs = recipe.all_needs()
    if cfg.cache.only:
        from ..cache_only import check_needs  # noqa: PLC0415

        check_needs(needs, cfg, method.name)
    if "attentions" in needs.student and hasattr(student, "use_eager_attention"):
        student.use_eager_attention()
        student.disable_attention_dropout()
    return Plan(task, train, dev, extra, teacher, student, method, recipe, layers, test)


def _datasets(plan: Plan, max_length: int):
    if plan.encoded is not None and plan.encoded[0].max_length == max_length:
        return plan.encoded
    plan.encoded = _encode(plan, max_length)
    return plan.encoded


def _encode(plan: Plan, max_length: int):
    enc = {"student": plan.student.text_encoder}
    if plan.recipe.all_needs().needs_teacher:
        enc["teacher"] = plan.teacher.text_encoder
    make = lambda split: EncodedSplit(split, enc, max_length, length_role="student")  # noqa: E731
    return make(plan.train), make(plan.dev), {k: make(v) for k, v in plan.extra.items()}, \
        None if plan.test is None else make(plan.test)


def collect_diagnostics(trainer: Trainer, module, provider: TeacherProvider, dev: EncodedSplit) -> dict[str, Any]:
    """Attention over teacher layers averaged over the dev set (ALP, Universal-KD), RAIL draws."""
    out: dict[str, Any] = {}
    objs = {k: o for k, o in module.recipe.objectives.items() if o.diagnostic_axes() is not None}
    if objs:
        module.eval()
        sums: dict[str, torch.Tensor] = {}
        needs = Needs.union(o.needs for o in objs.values())  # one teacher pass serves all
        source = provider.source(needs, trainer.device, dev)
        with torch.no_grad():
            for batch in ordered_batches(dev, trainer.cfg.eval_batch_size, trainer.device):
                s = module.student(batch.inputs["student"], hidden_states=True)
                t = source.trace(batch, needs)
                for k, o in objs.items():
                    w = o.layer_weights(s, t).float().sum(dim=0).cpu()
                    sums[k] = w if k not in sums else sums[k] + w
        out["layer_attention"] = {
            k: {**objs[k].diagnostic_axes(), "weights": (sums[k] / len(dev)).tolist()} for k in sums
        }
    draws = {k: {str(e): d for e, d in o.history.items()} for k, o in module.recipe.objectives.items() if hasattr(o, "history")}
    if draws:
        out["rail_draws"] = draws
    out["teacher_source"] = provider.decisions
    return out


def _cache(cfg: RunConfig):
    if not cfg.cache.enabled:
        return None
    if cfg.cache.only:  # serves entries built by `layerkd cache build`, never builds one
        from ..cache_only import CacheOnlyCache, build_hint  # noqa: PLC0415

        return CacheOnlyCache(cache_root(cfg), hint=build_hint(cfg), dtype=cfg.cache.dtype, max_length=cfg.train.max_length)
    from ..teacher_cache import TeacherCache  # noqa: PLC0415

    return TeacherCache(cache_root(cfg), dtype=cfg.cache.dtype, max_length=cfg.train.max_length)


def cache_root(cfg: RunConfig) -> Path:
    import os  # noqa: PLC0415

    if cfg.cache.dir:
        return Path(cfg.cache.dir)
    return Path(os.environ.get("LAYERKD_CACHE", Path.home() / ".cache" / "layerkd"))


def _check_resumed_heads(saved: Path, report: dict[str, Any]) -> None:
    """A resumed run must distil from the teacher heads it started with. Their key covers the fit
    settings and how the fit works (e.g. the standardisation floor), so a key that changed since the
    checkpoint means the student was trained against other targets."""
    meta = saved / "heads.json"
    if "key" not in report or not meta.exists():
        return
    old = json.loads(meta.read_text()).get("key")
    if old and old != report["key"]:
        raise CheckpointError(f"--resume: {meta} records teacher heads {old}, this run fits {report['key']}: the checkpoint "
                              "was trained against other teacher targets; rerun with --overwrite")


def _given_heads(cfg: RunConfig, plan: Plan):
    """Teacher heads given as a directory (``teacher.heads``), checked against the teacher."""
    from ..models.heads import LayerHeads  # noqa: PLC0415

    heads = LayerHeads.load(cfg.teacher.heads)
    if heads.width != plan.teacher.info.hidden_size or heads.num_labels != plan.task.num_labels:
        raise PairError(f"teacher.heads {cfg.teacher.heads}: heads of width {heads.width} / {heads.num_labels} labels "
                        f"do not fit this teacher (width {plan.teacher.info.hidden_size}, {plan.task.num_labels} labels)")
    return heads, {"layers": list(heads.layers), "source": cfg.teacher.heads}


def _inputs(plan: Plan, cfg: RunConfig, teacher_fp: str, given_heads) -> dict[str, Any]:
    """What this run is trained from (:mod:`layerkd.run_inputs`), before the student's first step."""
    heads = None
    if given_heads is not None:
        fp = module_fingerprint(given_heads, extra=json.dumps(given_heads.config_dict(), sort_keys=True))
        heads = model_input(given_heads, cfg.teacher.heads, fp)
    return run_inputs(train=plan.train, dev=plan.dev, test=plan.test, extra=plan.extra,
                      teacher=model_input(plan.teacher, cfg.teacher.path, teacher_fp) if teacher_fp else None,
                      student=model_input(plan.student, getattr(plan.student, "name", "") or cfg.student),
                      teacher_heads=heads)


def run_plan(plan: Plan, cfg: RunConfig, out: Path, *, resume: bool, progress: bool,
             allow_changed_inputs: bool = False) -> dict[str, Any]:
    train_ds, dev_ds, extra_ds, test_ds = _datasets(plan, cfg.train.max_length)
    needs = plan.recipe.all_needs()
    heads, heads_report = None, None
    teacher_fp = (getattr(plan.teacher, "cache_identity", None) or model_fingerprint(plan.teacher)) if needs.needs_teacher else ""
    cache = _cache(cfg) if needs.needs_teacher else None
    if "head_logits" in needs.teacher and cfg.teacher.heads is not None:
        heads, heads_report = _given_heads(cfg, plan)
    inputs = _inputs(plan, cfg, teacher_fp, heads)
    if resume:  # before any teacher heads are fitted or cached teacher outputs built
        check_resume_inputs(out, inputs, allow=allow_changed_inputs)
    if "head_logits" in needs.teacher:
        if heads is None:
            heads, heads_report = fit_teacher_heads(
                teacher=plan.teacher, task=plan.task, train=train_ds, dev=dev_ds, cfg=cfg.teacher.fit_heads,
                seed=cfg.train.seed, max_length=cfg.train.max_length, work_dir=out / "teacher_heads_run",
                cache_root=cache_root(cfg), teacher_fp=teacher_fp, cache=cache, progress=progress)
        if resume and not allow_changed_inputs:
            _check_resumed_heads(out / "teacher_heads", heads_report)
        if is_main_process():
            heads.save(out / "teacher_heads", extra=heads_report)
    provider = TeacherProvider(plan.teacher, heads, cache=cache)
    trainer = Trainer(
        student=plan.student, recipe=plan.recipe, task=plan.task, train_data=train_ds, eval_data=dev_ds, config=cfg.train,
        test_data=test_ds, output_dir=out, teacher=provider, config_hash=config_hash(cfg), extra_eval=extra_ds, progress=progress,
        diagnostics=lambda tr, mod: collect_diagnostics(tr, mod, provider, dev_ds), inputs=inputs,
    )
    result = trainer.fit(resume=resume)
    result.update({"method": plan.method.name, "method_description": plan.method.description,
                   "teacher_fingerprint": teacher_fp, "train_rows": len(plan.train), "train_meta": plan.train.meta,
                   "student": plan.student.info.describe(), "teacher": plan.teacher.info.describe()})
    if heads_report is not None:
        result["diagnostics"]["teacher_heads"] = heads_report
    if trainer.is_main:
        write_outputs(out, trainer.best_model, cfg, result,
                      eval_outputs={"best": trainer.best_eval.predictions, "last": trainer.last_eval.predictions})
    return result


def distill(cfg: RunConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
            allow_changed_inputs: bool = False) -> dict[str, Any]:
    if resume and (done := finished_result(cfg.output_dir, config_hash(cfg))) is not None:  # layerkd.run_finish
        return done
    method = resolve_recipe(cfg)
    if method.pipeline == "takd":
        from .takd import takd  # noqa: PLC0415

        return takd(cfg, method, resume=resume, overwrite=overwrite, progress=progress)
    if method.pipeline is not None:
        raise ConfigError(f"method {method.name!r}: unknown pipeline {method.pipeline!r}")
    if cfg.cache.only:
        from ..cache_only import check_plan  # noqa: PLC0415

        check_plan(cfg, method, cfg.student)  # before takd's stages, too
    plan = plan_distill(cfg, method=method)
    if cfg.cache.only:
        check_cache_only_entries(plan, cfg)  # every entry present before anything is written
    with output_directory(cfg.output_dir, overwrite=overwrite, resume=resume, cfg=cfg) as out:
        result = run_plan(plan, cfg, out, resume=resume, progress=progress, allow_changed_inputs=allow_changed_inputs)
        if is_main_process():
            finish_run(out, keep_checkpoints=cfg.train.keep_final_checkpoints)
    return result


def check_cache_only_entries(plan: Plan, cfg: RunConfig) -> None:
    """Cache-only mode: the entries of the training split (every teacher need of the recipe) and
    of the validation split (what the layer-attention diagnostics read) exist."""
    from ..cache_only import check_entries  # noqa: PLC0415

    train_ds, dev_ds, _, _ = _datasets(plan, cfg.train.max_length)
    needs = plan.recipe.all_needs()
    heads = _given_heads(cfg, plan)[0] if "head_logits" in needs.teacher and cfg.teacher.heads else None
    diag = Needs.union(o.needs for o in plan.recipe.objectives.values() if o.diagnostic_axes() is not None)
    check_entries(_cache(cfg), plan.teacher, heads, [(train_ds, needs), (dev_ds, diag)])


def write_summary(out: Path, text: str) -> None:
    atomic_write_text(out / "summary.txt", text)
