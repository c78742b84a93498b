#!/usr/bin/env python
"""Render ``docs/coverage.md`` from the outcomes ``tests/test_family_matrix.py`` records.

The tests write ``coverage.json`` when ``LAYERKD_COVERAGE_OUT`` is set (``benchmarks/coverage.sh``
runs them and then this script): every case with its section, row, column, status (``pass``,
``refused`` with the reason, ``fail`` with the error) and seconds. Nothing in the tables is typed:
a cell is what a test did.

Usage: python benchmarks/coverage.py COVERAGE_JSON OUT_MD [--seconds S] [--exit-code RC] [--command CMD]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

MARK = {"pass": "✓", "fail": "**FAIL**"}

FAMILY_NAMES = {"bert": "BERT", "roberta": "RoBERTa", "distilbert": "DistilBERT", "albert": "ALBERT", "electra": "ELECTRA",
                "deberta-v2": "DeBERTa-v2", "deberta-v3": "DeBERTa-v3", "modernbert": "ModernBERT",
                "xlm-roberta": "XLM-RoBERTa"}

HOW = """\
## How the matrix runs

`tests/test_family_matrix.py` builds, for every family, a tiny random encoder (4 blocks, 32 wide, 4 heads,
feed-forward 64) and a tokenizer of the family's kind, made on the spot with the `tokenizers` library
(`tests/families.py`; no downloads). The whole matrix runs in CI; to stay within its time it is split this way:

* **Fine-tune**: each family's teacher is fine-tuned once with the real stage (`layerkd.stages.finetune`, one
  optimiser step), saved, and reloaded with its fine-tuned head; the module shares it with every case below.
* **Methods** (family × method, and cross-family pairs): each case is the real distillation plan
  (`stages.distill.plan_distill`: the data read, the student built from its spec, every objective built against the
  pair — where impossible pairs are refused) followed by **one optimiser step of every phase of the recipe on one
  batch of 8**, through the trainer's own `TrainModule` and the live `TeacherProvider`. A case passes when every
  phase's loss is finite, every active term is present and the student's weights changed. Universal-KD and DIH get
  random teacher pseudo classifiers (fitting them is family-independent; the CLI runs below fit them). Method
  variants that differ only in options (`pkd-last`, `ckd-po`, `alp-no`, `alp-po`, `rail-c`, `universal-losses`,
  `internal-progressive`, `internal-all`) train end to end on BERT in `tests/test_methods_e2e.py`; `takd` is a
  pipeline of two `kd` runs (also there).
* **Students**: `bottom:2`, `layers:2,4` and `config:layers=2,hidden=16,heads=2,intermediate=32` of every family:
  the expected depth, width and feed-forward width, one `kd` step, saved and reloaded to the same logits.
  `--pooling mean`: a mean-pooled `bottom:2` student trains a step, saves and reloads as mean-pooled with the same
  logits (which differ from its [CLS] reading).
* **Refused** is a case too: the pair must be refused while planning, before anything is written, with the message
  shown (the test checks it).
* **CLI**: a few representative runs of `layerkd distill` in a subprocess (teacher cache, teacher-heads fit,
  evaluation, outputs, model card), whose saved students reload.
"""

FAMILY_NOTES = """\
## What each family needed

* **DeBERTa-v2/v3** have no `sdpa` attention kernel in transformers: the loader (and `config:` students) use eager
  attention for them (`models/transformer.py` `attention_kernel`). DeBERTa's context pooler has its own width
  (`pooler_hidden_size`), which a `config:` student of another width must follow (`models/cuts.py` `set_width`).
  v2 and v3 differ here as their released configurations do: v2 (`deberta-v2-xlarge`) has the convolution after the
  first block, v3 none; both use disentangled relative attention.
* **ModernBERT** keeps one attention type per block in `config.layer_types` (global or sliding window): a cut keeps
  the entries of its kept blocks, a `config:` student repeats the teacher's pattern. Its first block has no attention
  norm (the embedding norm serves): a cut that puts another block first drops that block's norm (the family has none
  there, and the saved student would not load back with it); a cut that moves block 1 elsewhere is refused.
* **ALBERT** shares block weights: with one group (every released ALBERT) all layers are one block, so a cut keeps it
  and sets the depth (`layers:2,4` is the same student as `bottom:2`); with one group per layer groups are cut like
  blocks; other groupings are refused.
* **DistilBERT** names its feed-forward width `hidden_dim`: a `config:` student's `intermediate=` sets it.
* **Attention maps**: every family returns attention probabilities once switched to eager attention (layerkd
  switches a model the first time an objective asks for them, and raises if they still come back empty), so the
  attention-map methods (`tinybert`, `internal`) run on all nine; they are refused only for pairs they cannot
  compare (other tokenizers, other head counts).
* After every cut, the student's parameters are compared with what the family builds from the student's config
  (on the `meta` device): a family with per-layer structure layerkd does not know fails with a message instead of
  saving a student that would reload differently.
"""


def _cell(case: dict | None, notes: list[str]) -> str:
    if case is None:
        return "—"
    if case["status"] == "refused":
        reason = case["reason"]
        if reason not in notes:
            notes.append(reason)
        return f"refused ({notes.index(reason) + 1})"
    return MARK.get(case["status"], case["status"])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def render(report: dict, *, seconds: str | None = None, exit_code: str | None = None,
           command: str = "bash benchmarks/coverage.sh", versions: str = "") -> str:
    cases = {(c["section"], c["row"], c["column"]): c for c in report["cases"]}
    families, tokenizers = report["families"], report["tokenizers"]
    notes: list[str] = []
    counts = {s: sum(1 for c in report["cases"] if c["status"] == s) for s in ("pass", "refused", "fail")}
    name = lambda f: FAMILY_NAMES.get(f, f)  # noqa: E731
    lines = ["# Model-family coverage", "",
             f"Generated by `{command}` from what `tests/test_family_matrix.py` recorded (`LAYERKD_COVERAGE_OUT`); "
             "do not edit by hand.", ""]
    summary = f"**{counts['pass']} cases pass, {counts['refused']} are refused as they must be, {counts['fail']} fail**"
    if seconds:
        summary += f" (the test file ran in {seconds} s"
        summary += f", pytest exit code {exit_code})." if exit_code is not None else ")."
    lines += [summary, ""]
    if versions:
        lines += [versions, ""]
    lines += ["✓: passes; refused (n): refused before training with message n (below); —: not run.", ""]

    lines += ["## Families: fine-tune, students, classifier pooling", ""]
    fam_cols = ["finetune", "pooling mean", "layers:2,1", "internal, 2-head student"]
    header = ["family", "tokenizer", "finetune", *(f"`{s}`" for s in report["students"]), "`--pooling mean`",
              "`layers:2,1` (block order)", "`internal`, 2-head student"]
    rows = []
    for f in families:
        row = [name(f), f"`{tokenizers[f]}`", _cell(cases.get(("family", f, "finetune")), notes)]
        row += [_cell(cases.get(("student", f, s)), notes) for s in report["students"]]
        row += [_cell(cases.get(("family", f, c)), notes) for c in fam_cols[1:]]
        rows.append(row)
    lines += _table(header, rows)
    lines += ["", "Tokenizers (`tests/families.py`): `wordpiece` the toy WordPiece vocabulary; `bpe` byte-level BPE with "
              "`<s> … </s>`; `bpe-cls` byte-level BPE with `[CLS] … [SEP]`; `unigram` SentencePiece-style Unigram with "
              "`[CLS] … [SEP]`; `unigram-s` the same with `<s> … </s>`. Families sharing a kind share one tokenizer.", ""]

    lines += ["## Family × method (student `bottom:2` of the family's teacher)", ""]
    rows = [[name(f), *(_cell(cases.get(("method", f, m)), notes) for m in report["methods"])] for f in families]
    lines += _table(["family", *(f"`{m}`" for m in report["methods"])], rows)

    shape = report["cross_shape"]
    lines += ["", f"## Cross-family pairs (pretrained student of the next family: {shape['layers']} blocks, "
              f"{shape['hidden']} wide, its own tokenizer)", "",
              "Token-aligned methods (`tinybert`, `internal`) compare token positions and need one tokenizer: they are "
              "refused for pairs whose tokenizers differ, and run where they are the same (DeBERTa-v2 → DeBERTa-v3).", ""]
    rows = []
    for t, s in report["pairs"]:
        key = f"{t} → {s}"
        pair = f"{name(t)} → {name(s)}" + (" (same tokenizer)" if tokenizers[t] == tokenizers[s] else "")
        rows.append([pair, *(_cell(cases.get(("cross", key, m)), notes) for m in report["cross_methods"])])
    lines += _table(["teacher → student", *(f"`{m}`" for m in report["cross_methods"])], rows)

    cli = [c for c in report["cases"] if c["section"] == "cli"]
    lines += ["", "## Full CLI runs (`layerkd distill`, 2 optimiser steps, teacher heads fitted, evaluated, saved)", ""]
    lines += _table(["run", "result", "seconds"], [[c["row"], _cell(c, notes), str(c["seconds"])] for c in cli])
    lines += [""]

    if notes:
        lines += ["## Refusal messages", ""]
        lines += [f"{i}. `{n}`" for i, n in enumerate(notes, 1)] + [""]
    fails = [c for c in report["cases"] if c["status"] == "fail"]
    if fails:
        lines += ["## Failures", ""] + [f"- {c['section']} / {c['row']} / {c['column']}: `{c['reason']}`" for c in fails]
        lines += [""]
    lines += [HOW, FAMILY_NOTES]
    return "\n".join(lines).rstrip("\n") + "\n"


def _versions() -> str:
    import tokenizers  # noqa: PLC0415
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    import layerkd  # noqa: PLC0415

    return (f"layerkd {layerkd.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"tokenizers {tokenizers.__version__}, Python {platform.python_version()}, CPU only.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("coverage_json", type=Path)
    ap.add_argument("out_md", type=Path)
    ap.add_argument("--seconds")
    ap.add_argument("--exit-code")
    ap.add_argument("--command", default="bash benchmarks/coverage.sh")
    a = ap.parse_args()
    report = json.loads(a.coverage_json.read_text())
    a.out_md.write_text(render(report, seconds=a.seconds, exit_code=a.exit_code, command=a.command, versions=_versions()))
    print(f"wrote {a.out_md}")


if __name__ == "__main__":
    main()
