"""Stage ``finetune``: train a (teacher) model on a task's gold labels."""

from __future__ import annotations

import logging
from typing import Any

from ..config import ObjectiveSpec, RecipeConfig, RunConfig
from ..data.encoding import EncodedSplit
from ..errors import ConfigError
from ..models.load import apply_pooling, load_model
from ..objectives.base import BuildContext
from ..recipe import build_recipe
from ..run_finish import finish_run, finished_result
from ..run_inputs import check_resume_inputs, model_input, run_inputs
from ..tasks import task_from_config
from ..trainer import Trainer
from .common import config_hash, load_data, output_directory, seed_everything, write_outputs
from .preflight import check_max_length

log = logging.getLogger("layerkd")


def finetune(cfg: RunConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
             allow_changed_inputs: bool = False) -> dict[str, Any]:
    if cfg.model is None:
        raise ConfigError("finetune: model: missing (the model to fine-tune)")
    if resume and (done := finished_result(cfg.output_dir, config_hash(cfg))) is not None:  # layerkd.run_finish
        return done
    if cfg.method not in (None, "ce"):
        raise ConfigError(f"finetune trains on gold labels only; method {cfg.method!r} needs `layerkd distill`")
    task = task_from_config(cfg.task)
    train, dev, test, extra = load_data(cfg.data, task)
    seed_everything(cfg.train.seed)
    model = load_model(cfg.model, task, trust_remote_code=cfg.trust_remote_code)
    apply_pooling(model, cfg.pooling)
    check_max_length(cfg.train.max_length, "train.max_length", model=model)
    enc = {"student": model.text_encoder}
    train_ds = EncodedSplit(train, enc, cfg.train.max_length)
    dev_ds = EncodedSplit(dev, enc, cfg.train.max_length)
    test_ds = None if test is None else EncodedSplit(test, enc, cfg.train.max_length)
    extra_ds = {k: EncodedSplit(v, enc, cfg.train.max_length) for k, v in extra.items()}
    ctx = BuildContext(student=model.info, teacher=None, num_labels=task.num_labels, regression=task.is_regression,
                       seed=cfg.train.seed)
    recipe_cfg = cfg.recipe or RecipeConfig(objectives=[ObjectiveSpec(name="ce")])
    recipe = build_recipe(recipe_cfg, ctx, cfg.train.epochs)
    if recipe.all_needs().needs_teacher:
        raise ConfigError("finetune: the recipe needs a teacher; use `layerkd distill`")
    inputs = run_inputs(train=train, dev=dev, test=test, extra=extra, model=model_input(model, cfg.model))
    with output_directory(cfg.output_dir, overwrite=overwrite, resume=resume, cfg=cfg) as out:
        if resume:
            check_resume_inputs(out, inputs, allow=allow_changed_inputs)
        trainer = Trainer(student=model, recipe=recipe, task=task, train_data=train_ds, eval_data=dev_ds, config=cfg.train,
                          test_data=test_ds, output_dir=out, config_hash=config_hash(cfg), extra_eval=extra_ds, progress=progress,
                          inputs=inputs)
        result = trainer.fit(resume=resume)
        result["train_rows"] = len(train)
        result["train_meta"] = train.meta
        if trainer.is_main:
            write_outputs(out, trainer.best_model, cfg, result,
                          eval_outputs={"best": trainer.best_eval.predictions, "last": trainer.last_eval.predictions})
            finish_run(out, keep_checkpoints=cfg.train.keep_final_checkpoints)
    return result
