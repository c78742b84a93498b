"""The Hugging Face model card (``README.md``) every finetune/distill run directory gets.

A run directory is a model directory, so a ``README.md`` there is the standard place for its card:
a student can be pushed to the Hub as it is. The card is YAML front matter (the Hub's model-card
metadata) and a short Markdown body, written by :func:`layerkd.stages.common.write_outputs` with
the other final files.

Metadata written (keys the Hub knows, then layerkd's own):

* ``library_name: layerkd``, ``pipeline_tag: text-classification``, ``tags`` (layerkd, the stage,
  knowledge-distillation for distill runs, each method of a ``+`` combination, the task, the
  model's family or kind);
* ``base_model`` — only a Hugging Face hub id, never a local path (the Hub links it): the model a
  fine-tuned run started from; for a distilled student, a pretrained student given by hub id, or
  the teacher's hub id when the student is cut from the teacher (``layers:``/``bottom:``). A
  randomly initialised student (``config:``, ``bilstm:``, ``cnn:``) has none;
* ``datasets`` — ``nyu-mll/glue`` for a registered GLUE task read from a GLUE directory, the
  dataset id for ``data.hf_dataset`` (when it is a hub id); none for local files;
* ``metrics`` and ``model-index`` — every metric of the task at the best epoch on the evaluation
  split, each named with its epoch and the training seed;
* ``layerkd`` — stage, task, method, the resolved recipe (objectives, weights, phases), teacher,
  student, seed, best/last-epoch metrics, precision and the classifier pooling.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .checkpoint import atomic_write_text

CARD_FILE = "README.md"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_GLUE_SPLITS = {"dev": "validation", "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched",
                "train": "train", "test": "test"}


def hub_id(spec: str | None) -> str | None:
    """``spec`` when it reads as a Hugging Face hub id and is not a local path, else None."""
    if not spec or os.path.lexists(spec) or spec.startswith((".", "/", "~")):
        return None
    return spec if _HUB_ID.match(spec) else None


def _finite(metrics: dict[str, Any] | None) -> dict[str, float]:
    out = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def _stage(cfg) -> str:
    return "distill" if cfg.teacher is not None else "finetune"


def _base_model(cfg) -> str | None:
    if _stage(cfg) == "finetune":
        return hub_id(cfg.model)
    student = (cfg.student or "").strip()
    if student.split(":", 1)[0] in ("layers", "bottom"):
        return hub_id(cfg.teacher.path)
    return hub_id(student)


def _dataset(cfg, task) -> dict[str, Any]:
    """The model-index ``dataset`` entry (and the ``datasets`` id, when there is one)."""
    d = cfg.data
    if d.data_dir is not None and task.glue_dir is not None:
        config = task.name.lower().replace("-", "")
        split = _GLUE_SPLITS.get(d.eval_split, d.eval_split)
        return {"name": f"GLUE {task.name.upper()}", "type": "nyu-mll/glue", "config": config, "split": split}
    if d.hf_dataset is not None:
        entry = {"name": Path(d.hf_dataset).name if os.path.lexists(d.hf_dataset) else d.hf_dataset,
                 "type": hub_id(d.hf_dataset) or task.name, "split": d.eval_split}
        return entry | ({"config": d.hf_config} if d.hf_config else {})
    source = d.dev_file or d.data_dir or ""
    return {"name": f"{task.name} ({Path(source).name})" if source else task.name, "type": task.name, "split": "dev"}


def _recipe(cfg) -> dict[str, Any] | None:
    """The recipe that trained the model: the config's own, or the one its method resolves to."""
    recipe = cfg.recipe
    if recipe is None and _stage(cfg) == "distill":
        from .stages.distill import resolve_recipe  # noqa: PLC0415

        recipe = resolve_recipe(cfg).recipe
    return None if recipe is None else recipe.model_dump(mode="json", exclude_none=True)


def _family(model) -> str:
    """``bert``, ``roberta`` … for a transformer (a mean-pooled save's ``layerkd-mean-<type>``
    model type named by its family), else the model's kind (``bilstm``, ``cnn``)."""
    kind = getattr(getattr(model, "info", None), "kind", None) or getattr(model, "kind", "model")
    if kind == "transformer":
        mtype = str(getattr(getattr(model, "config", None), "model_type", "") or "transformer")
        return re.sub(r"^layerkd-mean-", "", mtype)
    return str(kind)


def card_metadata(model, cfg, result: dict[str, Any]) -> dict[str, Any]:
    """The YAML front matter (see the module docstring)."""
    from .tasks import task_from_config  # noqa: PLC0415

    task = task_from_config(cfg.task)
    stage = _stage(cfg)
    method = result.get("method") or cfg.method or ("ce" if stage == "finetune" else None)
    seed = int(cfg.train.seed)
    best, last = _finite(result.get("best")), _finite(result.get("last"))
    epoch = result.get("best_epoch")
    tags = ["layerkd", "text-classification", stage]
    if stage == "distill":
        tags.append("knowledge-distillation")
    tags += [m for m in str(method or "").split("+") if m]
    tags += [task.name, _family(model)]
    tags = list(dict.fromkeys(t for t in tags if t))
    dataset = _dataset(cfg, task)
    meta: dict[str, Any] = {"library_name": "layerkd", "pipeline_tag": "text-classification", "tags": tags}
    base = _base_model(cfg)
    if base:
        meta["base_model"] = base
    if dataset["type"] != task.name:
        meta["datasets"] = [dataset["type"]]
    meta["metrics"] = list(task.metrics)
    meta["model-index"] = [{
        "name": Path(str(cfg.output_dir or "model")).name,
        "results": [{
            "task": {"type": "text-classification", "name": "Text Classification"},
            "dataset": dataset,
            "metrics": [{"type": k, "value": v, "name": f"{k} (best epoch {epoch}, seed {seed})"} for k, v in best.items()],
        }],
    }]
    meta["layerkd"] = {
        "stage": stage,
        "task": task.name,
        "method": method,
        "method_description": result.get("method_description"),
        "recipe": _recipe(cfg),
        "teacher": None if cfg.teacher is None else cfg.teacher.path,
        "student": cfg.student if stage == "distill" else cfg.model,
        "model": _family(model),
        "classifier_pooling": getattr(model, "pooling", None),
        "seeds": [seed],
        "best_epoch": epoch,
        "metrics": {"best": best, "last": last},
        "main_metric": task.main_metric,
        "precision": cfg.train.precision,
        "max_length": cfg.train.max_length,
    }
    meta["layerkd"] = {k: v for k, v in meta["layerkd"].items() if v is not None}
    return meta


def _usage(model, files: set[str]) -> str:
    kind = getattr(getattr(model, "info", None), "kind", "")
    lines = ["```bash", "layerkd evaluate MODEL_DIR --task TASK --data-dir glue/   # or --file any labelled TSV/CSV/JSONL",
             "layerkd export MODEL_DIR --format onnx --quantize int8      # ONNX, verified against PyTorch", "```"]
    if kind == "transformer" and getattr(model, "pooling", "cls") == "cls":
        lines += ["", "It is a plain Hugging Face sequence classifier:", "", "```python",
                  "from transformers import pipeline", 'classify = pipeline("text-classification", model="MODEL_DIR")', "```"]
    elif kind == "transformer":
        custom = [f for f in sorted(files) if f.startswith("modeling_") and f.endswith(".py")]
        how = (f" or with transformers and `trust_remote_code=True` (the model code is `{custom[0]}` beside this card)"
               if custom else "")
        lines += ["", "Its classifier reads the **mean** of the final token states, not [CLS] (layerkd's `--pooling mean`): "
                  f"load it with layerkd (`layerkd.models.load.load_model`){how}, which restores the pooling."]
    else:
        lines += ["", f"A layerkd {kind} model (not a transformers architecture): load it with "
                  "`layerkd.models.load.load_model(MODEL_DIR)`."]
    return "\n".join(lines)


def build_card(model, cfg, result: dict[str, Any], files: set[str] = frozenset()) -> str:
    """The whole ``README.md``: front matter + body (``files``: what the model directory holds)."""
    meta = card_metadata(model, cfg, result)
    lk = meta["layerkd"]
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False)
    title = meta["model-index"][0]["name"]
    model_line = f"{lk['model']}" + (f", classifier pooling {lk['classifier_pooling']}" if lk.get("classifier_pooling") else "")
    if lk["stage"] == "distill":
        facts = [f"- teacher: `{lk.get('teacher')}`", f"- student: `{lk.get('student')}` ({model_line})",
                 f"- method: `{lk.get('method')}`" + (f" — {lk['method_description']}" if lk.get("method_description") else "")]
        what = "distilled from a teacher"
    else:
        facts = [f"- fine-tuned from: `{lk.get('student')}` ({model_line})", "- objective: cross-entropy on the gold labels"]
        what = "fine-tuned"
    ds = meta["model-index"][0]["results"][0]["dataset"]
    best, last = lk["metrics"]["best"], lk["metrics"]["last"]
    rows = "\n".join(f"| {k} | {best[k]:.4f} | {last[k]:.4f} |" if k in last else f"| {k} | {best[k]:.4f} | – |"
                     for k in best)
    facts_text = "\n".join(facts)
    body = f"""# {title}

A text classifier for **{lk['task']}**, {what} with layerkd:

{facts_text}

## Results

{ds['name']}, split `{ds.get('split', 'dev')}`; training seed {lk['seeds'][0]}, precision {lk['precision']}, max length {lk['max_length']}.

| metric | best epoch ({lk.get('best_epoch')}) | last epoch |
|---|---|---|
{rows}

## Use

{_usage(model, set(files))}

## Training

The resolved configuration is `config.yaml` beside this card (re-run it with `layerkd {lk['stage']} --config config.yaml
--output-dir NEW_DIR`); `results.json` holds the per-epoch history, diagnostics and dev predictions, `metrics.json`
the best and last epoch.
"""
    return f"---\n{head}---\n\n{body}"


def write_card(out: Path, model, cfg, result: dict[str, Any]) -> None:
    """Write ``out/README.md`` (after the model itself was saved in ``out``)."""
    out = Path(out)
    files = {p.name for p in out.iterdir()} if out.is_dir() else set()
    atomic_write_text(out / CARD_FILE, build_card(model, cfg, result, files))
