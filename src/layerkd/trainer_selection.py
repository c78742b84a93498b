"""The training loop's choices and its result: each evaluation on the selection split tracks the
best model (only in the last phase of a recipe) and early stopping; at the end the selected and
the last model are scored on the test split (when the selection split was carved from the training
set, :mod:`layerkd.data.validation`) and on the extra evaluation sets, and the run's result record
is assembled. A mixin of :class:`layerkd.trainer.Trainer`."""

from __future__ import annotations

import copy
import logging
from typing import Any

from . import checkpoint as ckpt
from .progress import format_eval

log = logging.getLogger("layerkd")


class SelectionMixin:
    def _evaluate_and_track(self, epoch: int, end_of_epoch: bool) -> None:
        st = self.state
        res = self.evaluate(self.eval_data)
        main = res.main
        # in a multi-phase recipe only the last phase trains the final model (e.g. internal KD's
        # stages leave the classifier untouched): earlier evaluations are logged, not selected
        final_phase = self.recipe.phase_index == len(self.recipe.phases) - 1
        improved = final_phase and main > st.best_score
        entry = {"step": st.global_step, "epoch": epoch + (1 if end_of_epoch else 0), "end_of_epoch": end_of_epoch,
                 **{k: v for k, v in res.metrics.items() if k != "_main"}}
        st.history.append(entry)
        self._log({"event": "eval", "split": self.eval_data.split.name, **entry, "main": main, "best": improved})
        if improved:
            st.best_score, st.best_step, st.best_epoch, st.bad_evals = main, st.global_step, entry["epoch"], 0
            self._save_best()
        elif final_phase:
            st.bad_evals += 1
            if self.cfg.early_stopping_patience and st.bad_evals >= self.cfg.early_stopping_patience:
                st.stopped_early = True
                self._log({"event": "early_stop", "step": st.global_step, "epoch": epoch})
        if self.is_main:
            log.info(format_eval(self.label, self.eval_data.split.name, len(self.eval_data), res.metrics, main=self.task.main_metric,
                                 step=st.global_step, epoch=epoch + 1, best=improved))

    # ------------------------------------------------------------------ the end
    def _finish(self, wall: float) -> dict[str, Any]:
        st = self.state
        module = self.accelerator.unwrap_model(self.module)
        last = self.evaluate(self.eval_data)
        best_file = self.ckpt_dir / "best" / "module.safetensors"
        if best_file.exists() and st.best_step != st.global_step:
            best_module = copy.deepcopy(module)
            ckpt.load_module(best_module, best_file)
            best_module.to(self.device)
            best = self.evaluate(self.eval_data, best_module)
        else:
            best_module, best = module, last
        selection = {"split": self.eval_data.split.name, "rows": len(self.eval_data)}
        if self.test_data is not None:  # the evaluation split is the test set: scored only now
            selection.update(best={k: v for k, v in best.metrics.items() if k != "_main"},
                             last={k: v for k, v in last.metrics.items() if k != "_main"},
                             row_ids=self.eval_data.split.meta.get("validation", {}).get("rows"))
            last = self.evaluate(self.test_data, module)
            best = last if best_module is module else self.evaluate(self.test_data, best_module)
        extra = {}
        for name, data in self.extra_eval.items():
            eb, el = self.evaluate(data, best_module), self.evaluate(data, module)
            extra[name] = {
                "best": {k: v for k, v in eb.metrics.items() if k != "_main"},
                "last": {k: v for k, v in el.metrics.items() if k != "_main"},
                "predictions": {"best": eb.predictions.tolist(), "last": el.predictions.tolist()},
                "labels": data.labels.numpy().tolist(),
            }
        diag = self.diagnostics(self, best_module) if self.diagnostics is not None else {}
        result = {
            "task": self.task.name,
            "main_metric": self.task.main_metric,
            "best": {k: v for k, v in best.metrics.items() if k != "_main"},
            "last": {k: v for k, v in last.metrics.items() if k != "_main"},
            "best_step": st.best_step,
            "best_epoch": st.best_epoch,
            "steps": st.global_step,
            "epochs_run": st.epoch,
            "stopped_early": st.stopped_early,
            "history": st.history,
            "train_seconds": wall,
            "extra_eval": extra,
            "dev_labels": (self.eval_data if self.test_data is None else self.test_data).labels.numpy().tolist(),
            "selection": selection,
            "student_params": sum(p.numel() for p in module.student.parameters()),
            "diagnostics": diag,
            "precision": self.cfg.precision,
            "processes": self.accelerator.num_processes,
        }
        self.best_module = best_module
        self.best_model = best_module.student
        self.best_eval, self.last_eval = best, last
        return result
