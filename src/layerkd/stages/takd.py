"""``takd``: Teacher-Assistant KD (Mirzadeh et al., 2020) as one pipeline with two stages.

Stage 1 distils the teacher into an assistant of intermediate size (``assistant`` spec; the
preset's ``skip`` = every other teacher layer, e.g. layers 2,4,6 of a 6-layer teacher), saved in
``OUTPUT/assistant``. Stage 2 distils the assistant into the student (built from the *teacher*
as for every other method, so initialisations stay comparable), saved in ``OUTPUT``. Both stages
use the method's recipe (kd) and ``train.epochs`` each. A finished stage 1 is not rerun.
"""

from __future__ import annotations

import json
from typing import Any

from ..config import RunConfig
from ..errors import ConfigError
from ..methods import Method
from ..models.load import load_model
from ..run_finish import finish_run
from .common import is_main_process, output_directory
from .distill import plan_distill, run_plan


def assistant_spec(spec: str | None, teacher_layers: int) -> str:
    if spec in (None, "skip"):
        if teacher_layers < 3:
            raise ConfigError(f"takd: a {teacher_layers}-layer teacher is too shallow for an assistant")
        return "layers:" + ",".join(str(i) for i in range(2, teacher_layers + 1, 2))
    return spec


def takd(cfg: RunConfig, method: Method, *, resume: bool, overwrite: bool, progress: bool) -> dict[str, Any]:
    first = plan_distill(cfg, method=method, student_spec="layers:1")  # validates data/teacher early
    spec = assistant_spec(cfg.assistant or method.assistant, first.teacher.info.num_layers)
    stage1 = plan_distill(cfg, teacher=first.teacher, student_spec=spec, method=method)
    # validate stage 2 against a teacher of the assistant's shape before writing anything
    plan_distill(cfg, teacher=stage1.student, cut_from=first.teacher, method=method)
    with output_directory(cfg.output_dir, overwrite=overwrite, resume=resume, cfg=cfg) as out:
        a_dir = out / "assistant"
        if (a_dir / "metrics.json").exists():
            a_result = json.loads((a_dir / "results.json").read_text())
        else:
            a_dir.mkdir(parents=True, exist_ok=True)
            a_result = run_plan(stage1, cfg.model_copy(update={"output_dir": str(a_dir)}), a_dir,
                                resume=resume and (a_dir / "checkpoints").exists(), progress=progress)
        assistant = load_model(a_dir, first.task)
        # the student is cut from the teacher (as for every method), taught by the assistant
        stage2 = plan_distill(cfg, teacher=assistant, cut_from=first.teacher, method=method)
        result = run_plan(stage2, cfg, out, resume=resume and (out / "checkpoints").exists(), progress=progress)
        if is_main_process():  # both stages done: drop their checkpoints (layerkd.run_finish)
            finish_run(out, keep_checkpoints=cfg.train.keep_final_checkpoints)
    result["assistant"] = {"spec": spec, "best": a_result["best"], "last": a_result["last"]}
    return result
