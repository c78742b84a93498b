"""The worker side of ``benchmarks/speed.py``: one measurement in a fresh process.

``speed.py --worker SPEC.json`` calls :func:`worker_main`, which builds the row named by the spec
and writes its JSON result (per-epoch seconds read from the run's ``log.jsonl``, the teacher-source
decisions, peak RSS). Kinds: ``layerkd`` (a real ``layerkd.stages.distill.distill`` run, with the
row's lever applied), ``textbrewer`` (TextBrewer's ``GeneralDistiller`` on the same batches),
``forward`` (the teacher's forward pass alone over the same batches) and ``heads`` (fitting the
teacher's pseudo classifiers once, not timed). ``--smoke`` calls :func:`worker_main` in-process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from timing import peak_rss_mb as _peak_rss_mb
from timing import set_threads as _threads


def _epoch_times(log_path: Path) -> list[dict]:
    rows = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()]
    out = []
    starts = {r["epoch"]: r for r in rows if r["event"] == "epoch_start"}
    for e, start in sorted(starts.items()):
        trains = [r for r in rows if r["event"] == "train" and r["epoch"] == e]
        if trains:
            out.append({"epoch": e, "seconds": trains[-1]["time"] - start["time"],
                        "steps": trains[-1]["step"] - start["step"]})
    return out


def _run_config(spec: dict) -> dict:
    a = spec["args"]
    cfg = {
        "task": a["task"],
        "data": {"data_dir": a["data_dir"], "train_subsample": a["subsample"], "subsample_seed": 0},
        "teacher": {"path": a["teacher"]},
        "student": a["student"],
        "method": spec["method"],
        "train": {"epochs": a.get("epochs", 1), "batch_size": a["batch_size"], "max_length": a["max_length"], "seed": a["seed"],
                  "lr": a["lr"], "precision": spec.get("precision") or a["precision"], "log_every_steps": 10},
        "cache": {"enabled": spec["cache"], "dir": spec["cache_dir"]},
        "output_dir": spec["output_dir"],
    }
    # every training row is timed; no rows held out for model selection (which the timing never sees)
    cfg["data"]["validation"] = {"source": "eval"}
    if spec.get("optimizer_impl"):
        cfg["train"]["optimizer_impl"] = spec["optimizer_impl"]
    if a["steps"]:
        cfg["train"]["max_steps"] = a["steps"]
    if spec.get("epochs_budget"):
        # a scheduled recipe (internal-all: m stage epochs, then soft labels) needs a multi-epoch
        # budget to be valid; max_steps stops it after the first (live, attention-map) epoch
        cfg["train"]["epochs"] = spec["epochs_budget"]
        cfg["train"]["max_steps"] = a["steps"] or _steps_per_epoch(spec)
    if spec.get("heads"):
        cfg["teacher"]["heads"] = spec["heads"]
    return cfg


def _splits(a: dict, task):
    """The training rows every row sees (no validation carve, as ``_run_config``) and the dev split."""
    from layerkd.config import DataConfig, ValidationConfig  # noqa: PLC0415
    from layerkd.stages.common import load_data  # noqa: PLC0415

    data = load_data(DataConfig(data_dir=a["data_dir"], train_subsample=a["subsample"], subsample_seed=0,
                                validation=ValidationConfig(source="eval")), task)
    return data.train, data.select


def _steps_per_epoch(spec: dict) -> int:
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    a = spec["args"]
    train, _ = _splits(a, task_from_config(a["task"]))
    return -(-len(train) // a["batch_size"])


def worker_layerkd(spec: dict) -> dict:
    from layerkd.config import validate_run_config  # noqa: PLC0415
    from layerkd.stages.distill import distill  # noqa: PLC0415

    out = Path(spec["output_dir"])
    import layerkd.stages.distill as stage  # noqa: PLC0415

    build, frozen = stage.build_student, (_freeze_embeddings() if spec.get("freeze_embeddings") else None)
    try:
        res = distill(validate_run_config(_run_config(spec)), progress=False)
    finally:
        stage.build_student = build  # --smoke runs every row in one process
    epochs = _epoch_times(out / "log.jsonl")
    decisions = res.get("diagnostics", {}).get("teacher_source", [])
    return {"epochs": epochs, "teacher_source": decisions, "train_rows": res.get("train_rows"),
            "dev": res.get("last"), "precision": res.get("precision"), "frozen_embeddings": frozen}


def _freeze_embeddings() -> dict:
    """The ``frozen-emb`` lever: the student's word-embedding matrix gets no gradient and no Adam
    update (the trainer's optimiser takes only parameters that require a gradient). Benchmark-only:
    the student built by ``distill`` is wrapped here; it becomes a config option only if
    ``benchmarks/levers.py`` shows no quality cost."""
    import layerkd.stages.distill as stage  # noqa: PLC0415

    record: dict = {}
    build = stage.build_student

    def frozen_build(*args, **kwargs):
        student = build(*args, **kwargs)
        emb = student.hf.get_input_embeddings().weight
        emb.requires_grad_(False)
        record.update(frozen_params=emb.numel(), trainable_params=sum(p.numel() for p in student.parameters()
                                                                        if p.requires_grad))
        return student

    stage.build_student = frozen_build
    return record


def worker_heads(spec: dict) -> dict:
    """Fit the teacher's pseudo classifiers once (all universal rows then load them)."""
    from layerkd.config import HeadsFitConfig  # noqa: PLC0415
    from layerkd.data.encoding import EncodedSplit  # noqa: PLC0415
    from layerkd.models.fingerprint import model_fingerprint  # noqa: PLC0415
    from layerkd.models.load import load_model  # noqa: PLC0415
    from layerkd.stages.heads import fit_teacher_heads  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415
    from layerkd.teacher_cache import TeacherCache  # noqa: PLC0415

    a = spec["args"]
    task = task_from_config(a["task"])
    train, dev = _splits(a, task)
    teacher = load_model(a["teacher"], task, require_head=True)
    enc = {"student": teacher.text_encoder, "teacher": teacher.text_encoder}
    tr, dv = EncodedSplit(train, enc, a["max_length"]), EncodedSplit(dev, enc, a["max_length"])
    root = Path(spec["cache_dir"])
    heads, report = fit_teacher_heads(teacher=teacher, task=task, train=tr, dev=dv, cfg=HeadsFitConfig(), seed=a["seed"],
                                      max_length=a["max_length"], work_dir=Path(spec["output_dir"]), cache_root=root,
                                      teacher_fp=model_fingerprint(teacher), cache=TeacherCache(root))
    heads.save(spec["heads"], extra=report)
    return {"heads": spec["heads"], "dev_scores": report["dev_scores"]}


def worker_textbrewer(spec: dict) -> dict:
    import textbrewer  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig  # noqa: PLC0415

    from layerkd import layer_maps  # noqa: PLC0415
    from layerkd.config import TrainConfig  # noqa: PLC0415
    from layerkd.data.batching import LengthGroupedBatchSampler  # noqa: PLC0415
    from layerkd.data.encoding import EncodedSplit  # noqa: PLC0415
    from layerkd.methods import resolve_method  # noqa: PLC0415
    from layerkd.models.load import build_student, load_model  # noqa: PLC0415
    from layerkd.stages.common import seed_everything  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    a = spec["args"]
    tc = TrainConfig(batch_size=a["batch_size"], max_length=a["max_length"], seed=a["seed"], lr=a["lr"])
    task = task_from_config(a["task"])
    train, _ = _splits(a, task)
    teacher = load_model(a["teacher"], task, require_head=True)
    seed_everything(tc.seed)  # as layerkd's distill does before building the student: the same init
    student = build_student(a["student"], teacher, task)
    data = EncodedSplit(train, {"student": student.text_encoder, "teacher": teacher.text_encoder}, tc.max_length,
                        length_role="student")
    if data.role_key["student"] != data.role_key["teacher"]:
        raise SystemExit("textbrewer row: teacher and student must share a tokenizer")
    # the same batches as the Trainer's first epoch (same sampler, seed and epoch)
    batches = LengthGroupedBatchSampler(data.lengths, tc.batch_size, seed=tc.seed, shuffle=True,
                                        group_by_length=tc.group_by_length).batches(0)
    if a["steps"]:
        batches = batches[: a["steps"]]
    device = "cuda" if torch.cuda.is_available() else "cpu"

    class Loader:
        def __len__(self):
            return len(batches)

        def __iter__(self):
            for b in batches:
                bt = data.batch(b)
                yield {**bt.inputs["student"], "labels": bt.labels}

    # our pkd preset, term by term
    recipe = {o.name: o for o in resolve_method("pkd").recipe.objectives}
    temp = float(recipe["kd"].options.get("temperature", 2.0))
    pkd_opts = recipe["pkd"].options
    n, m = teacher.info.num_layers, student.info.num_layers
    s_layers = list(range(1, m))
    t_layers = layer_maps.resolve(pkd_opts.get("mapping", "skip"), n, m)
    d, d_s = teacher.info.hidden_size, student.info.hidden_size
    # ours: weight · mean over (k layers × d) of the squared normalised difference; TextBrewer's
    # pkd loss: sum over d, mean over the batch, per layer pair; a linear projection (its own, as
    # ours) when the widths differ
    match_w = recipe["pkd"].weight / (len(s_layers) * d)
    proj = {"proj": ["linear", d_s, d]} if d_s != d else {}
    matches = [{"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "pkd", "weight": match_w, **proj}
               for s, t in zip(s_layers, t_layers, strict=True)]
    dcfg = DistillationConfig(temperature=temp, kd_loss_type="ce", kd_loss_weight=recipe["kd"].weight * temp * temp,
                              hard_label_weight=recipe["ce"].weight, intermediate_matches=matches)
    out_dir = Path(spec["output_dir"])
    tcfg = TrainingConfig(device=device, output_dir=str(out_dir), log_dir=None)

    def adaptor_t(batch, out):
        return {"logits": out.logits, "hidden": out.hidden_states}

    def adaptor_s(batch, out):
        return {"logits": out.logits, "hidden": out.hidden_states, "losses": out.loss}

    t_hf, s_hf = teacher.hf.to(device).eval(), student.hf.to(device).train()
    for p in t_hf.parameters():
        p.requires_grad_(False)
    decay = [p for nme, p in s_hf.named_parameters() if not (nme.endswith("bias") or "LayerNorm" in nme)]
    no_decay = [p for nme, p in s_hf.named_parameters() if nme.endswith("bias") or "LayerNorm" in nme]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, eps=tc.adam_eps)
    total, warm = len(batches), int(tc.warmup_ratio * len(batches))

    def factor(step):
        return (step + 1) / max(1, warm) if step < warm else max(0.0, (total - step) / max(1, total - warm))

    distiller = GeneralDistiller(train_config=tcfg, distill_config=dcfg, model_T=t_hf, model_S=s_hf,
                                 adaptor_T=adaptor_t, adaptor_S=adaptor_s)
    distiller.save_and_callback = lambda *args, **kw: None  # no checkpoint inside the timed epoch (ours: none either)
    t0 = time.perf_counter()
    distiller.train(optimizer, Loader(), num_epochs=1, scheduler_class=torch.optim.lr_scheduler.LambdaLR,
                    scheduler_args={"lr_lambda": factor}, max_grad_norm=tc.max_grad_norm, output_hidden_states=True)
    seconds = time.perf_counter() - t0
    return {"epochs": [{"epoch": 0, "seconds": seconds, "steps": len(batches)}], "train_rows": len(data),
            "textbrewer": textbrewer.__version__, "layer_pairs": list(zip(s_layers, t_layers, strict=True)),
            "match_weight": match_w, "kd_loss_weight": dcfg.kd_loss_weight}


def worker_forward(spec: dict) -> dict:
    """The teacher's forward pass alone (inference mode, hidden states as the layer-vector recipes
    ask for them) over the batches of the student's epoch: what a free teacher saves per epoch."""
    import torch  # noqa: PLC0415

    from layerkd.config import TrainConfig  # noqa: PLC0415
    from layerkd.data.batching import LengthGroupedBatchSampler  # noqa: PLC0415
    from layerkd.data.encoding import EncodedSplit  # noqa: PLC0415
    from layerkd.models.load import load_model  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    a = spec["args"]
    tc = TrainConfig(batch_size=a["batch_size"], max_length=a["max_length"], seed=a["seed"])
    task = task_from_config(a["task"])
    train, _ = _splits(a, task)
    teacher = load_model(a["teacher"], task, require_head=True)
    data = EncodedSplit(train, {"teacher": teacher.text_encoder}, tc.max_length)
    batches = LengthGroupedBatchSampler(data.lengths, tc.batch_size, seed=tc.seed, shuffle=True,
                                        group_by_length=tc.group_by_length).batches(0)
    if a["steps"]:
        batches = batches[: a["steps"]]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    teacher.to(device).eval()
    bf16 = a["precision"] == "bf16"
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
        for b in batches:
            inputs = {k: v.to(device) for k, v in data.batch(b).inputs["teacher"].items()}
            teacher(inputs, hidden_states=True).logits.float().sum().item()  # .item(): wait for the device
    seconds = time.perf_counter() - t0
    return {"epochs": [{"epoch": 0, "seconds": seconds, "steps": len(batches)}], "train_rows": len(data)}


def worker_main(spec_path: str | dict) -> dict:
    spec = spec_path if isinstance(spec_path, dict) else json.loads(Path(spec_path).read_text())
    _threads(spec["args"].get("threads"))
    fn = {"layerkd": worker_layerkd, "textbrewer": worker_textbrewer, "heads": worker_heads,
          "forward": worker_forward}[spec["kind"]]
    result = fn(spec)
    import torch  # noqa: PLC0415

    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    result["torch_threads"] = torch.get_num_threads()
    if spec.get("result"):
        Path(spec["result"]).write_text(json.dumps(result, indent=1, default=str))
    return result
