"""Helpers of the family × method matrix (``tests/test_family_matrix.py``): the outcome recorder
behind ``LAYERKD_COVERAGE_OUT`` and one optimiser step per recipe phase."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from conftest import distill_config
from layerkd.data.encoding import EncodedSplit
from layerkd.models.heads import LayerHeads
from layerkd.stages.distill import plan_distill
from layerkd.teacher import TeacherProvider
from layerkd.trainer import TrainModule

OUT_ENV = "LAYERKD_COVERAGE_OUT"
MAX_LENGTH = 32
BATCH = 8
TEXTS = ["the movie was not good", "this plot is really superb and the cast was fine", "a dull ending"]

#: every case's outcome, in the order run
RESULTS: list[dict] = []


def write_report(meta: dict) -> None:
    """``$LAYERKD_COVERAGE_OUT/coverage.json``: ``meta`` (the matrix's axes) and every recorded case."""
    dest = os.environ.get(OUT_ENV)
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        (Path(dest) / "coverage.json").write_text(json.dumps({**meta, "cases": RESULTS}, indent=1))


@contextlib.contextmanager
def case(section: str, row: str, column: str):
    """Record a case's outcome: ``pass``, ``refused`` (set ``outcome["refused"]`` to the reason) or ``fail``."""
    outcome: dict = {}
    t0 = time.perf_counter()
    try:
        yield outcome
    except BaseException as exc:
        RESULTS.append({"section": section, "row": row, "column": column, "status": "fail",
                        "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300],
                        "seconds": round(time.perf_counter() - t0, 2)})
        raise
    status = "refused" if "refused" in outcome else "pass"
    RESULTS.append({"section": section, "row": row, "column": column, "status": status,
                    "reason": outcome.get("refused", ""), "seconds": round(time.perf_counter() - t0, 2)})


def one_step_per_phase(plan) -> dict[str, float]:
    """One optimiser step of every phase of ``plan``'s recipe on the first training batch, through the
    trainer's TrainModule and the live TeacherProvider. Returns every term's value."""
    needs = plan.recipe.all_needs()
    encoders = {"student": plan.student.text_encoder}
    if needs.needs_teacher:
        encoders["teacher"] = plan.teacher.text_encoder
    train = EncodedSplit(plan.train, encoders, MAX_LENGTH, length_role="student")
    batch = train.batch(list(range(BATCH)))
    heads = None
    if "head_logits" in needs.teacher:
        torch.manual_seed(0)
        heads = LayerHeads(list(plan.head_layers), plan.teacher.info.hidden_size, plan.task.num_labels)
    provider = TeacherProvider(plan.teacher, heads)
    module = TrainModule(plan.student, plan.recipe).train()
    before = {n: p.detach().clone() for n, p in plan.student.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    terms_seen: dict[str, float] = {}
    for i, phase in enumerate(plan.recipe.phases):
        plan.recipe.load_schedule_state({"phase_index": i, "phase_epoch": 0, "elapsed_before_phase": i,
                                         "best_loss": math.inf, "bad_epochs": 0})
        plan.recipe.start_epoch(i)
        plan.recipe.start_step()
        phase_needs = plan.recipe.needs()
        teacher = provider.source(phase_needs, torch.device("cpu"), train).trace(batch, phase_needs) \
            if phase_needs.needs_teacher else None
        loss, terms = module(batch, teacher, phase_needs)
        assert torch.isfinite(loss), f"phase {phase.name}: loss {loss}"
        assert set(terms) == set(phase.active), f"phase {phase.name}: terms {sorted(terms)}"
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        terms_seen.update({k: float(v.detach()) for k, v in terms.items()})
    changed = [n for n, p in plan.student.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert changed, "the optimiser step changed no student weight"
    return terms_seen


def make_plan(teacher_dir: Path, teacher: nn.Module, data, method: str, out: Path, student: str, **extra):
    """``plan_distill`` of the toy task for a copy of ``teacher`` (a cut student must not share its weights)."""
    cfg = distill_config(teacher_dir, data, method, out, student=student, epochs=4, extra=extra or None)
    return plan_distill(cfg, teacher=copy.deepcopy(teacher))


def logits(model: nn.Module, texts: list[str]) -> torch.Tensor:
    """The model's logits for ``texts`` in eval mode (its own tokenizer, padded)."""
    enc = model.text_encoder.tokenizer(texts, padding=True, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in model.text_encoder.tokenizer.model_input_names}
    model.eval()
    with torch.no_grad():
        return model(inputs).logits

