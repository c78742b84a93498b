"""Catalogue cases of student cuts that a model family cannot make (issue 21 point 1), merged into
``tests/test_errors_catalogue.py``'s CASES."""

from __future__ import annotations

from families import write_family


def _modernbert_teacher(ctx):
    return {"path": str(write_family(ctx.tmp / "modernbert", "modernbert", fine_tuned=True))}


CASES = {
    "student-cut-impossible": (
        lambda c: c.distill(student="layers:2,1", teacher=_modernbert_teacher(c)),
        r"student layers: the teacher's block 1 has no attn_norm \(only the family's first block goes without it\), "
        r"so it cannot be student block 2; keep it first or leave it out"),
}
