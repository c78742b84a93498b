"""The training loop's checkpoints: the periodic checkpoint (everything ``--resume`` needs: weights,
objective parameters, optimizer, scheduler, loop state, every process's RNG), the best model, and
resuming from the newest valid checkpoint. A mixin of :class:`layerkd.trainer.Trainer`: it works
on the trainer's own state (``self.state``, ``self.module``, ``self.accelerator`` …)."""

from __future__ import annotations

import logging
import math
import shutil

from . import checkpoint as ckpt
from .errors import CheckpointError

log = logging.getLogger("layerkd")


class CheckpointMixin:
    def _save_checkpoint(self, optimizer, scheduler) -> None:
        rng_ranks = None
        if self.accelerator.num_processes > 1:  # every process's generators, so a resume continues each exactly
            from accelerate.utils import gather_object  # noqa: PLC0415

            rng_ranks = gather_object([ckpt.capture_rng()])
        if self.is_main:
            unwrapped = self.accelerator.unwrap_model(self.module)
            state = dict(vars(self.state))
            state["log_offset"] = self._log_size()
            state["config_hash"] = self.config_hash
            if self.inputs:  # what --resume compares (layerkd.run_inputs.check_resume_inputs)
                state["inputs"] = self.inputs
            state["recipe"] = self.recipe.schedule_state()
            path = self.ckpt_dir / f"step-{self.state.global_step:07d}"
            ckpt.save_checkpoint(
                path,
                model=unwrapped.student,
                objectives=unwrapped.recipe,
                optimizer_state=optimizer.state_dict(),
                scheduler_state=scheduler.state_dict(),
                state=state,
                rng_ranks=rng_ranks,
            )
            ckpt.prune_checkpoints(self.ckpt_dir, self.cfg.keep_checkpoints)
        self.accelerator.wait_for_everyone()

    def _save_best(self) -> None:
        if self.is_main:
            module = self.accelerator.unwrap_model(self.module)
            ckpt.write_dir_atomically(self.ckpt_dir / "best", lambda tmp: ckpt.save_module(module, tmp / "module.safetensors"))
        self.accelerator.wait_for_everyone()

    def _resume(self, optimizer, scheduler) -> bool:
        """Load the newest valid checkpoint (True), or clear what a run killed before its first
        checkpoint left behind and start from scratch (False)."""
        warn = (lambda m: log.warning(m)) if self.is_main else (lambda m: None)
        if self.is_main:  # a hard kill can leave a half-written .<name>.tmp or, mid-replacement, only .<name>.old
            ckpt.recover_all(self.ckpt_dir, warn=warn)
        self.accelerator.wait_for_everyone()
        path = ckpt.latest_valid_checkpoint(self.ckpt_dir, warn=warn)
        if path is None:
            if ckpt.list_checkpoints(self.ckpt_dir):
                warn("no valid checkpoint to resume from; starting from scratch")
            elif self.is_main:
                log.info("no checkpoint found in %s; starting from scratch", self.ckpt_dir)
            if self.is_main:  # the killed run's log lines and best model would be replayed: drop them
                (self.output_dir / "log.jsonl").unlink(missing_ok=True)
                shutil.rmtree(self.ckpt_dir / "best", ignore_errors=True)
            self.accelerator.wait_for_everyone()
            return False
        data = ckpt.load_checkpoint(path)
        st = data["state"]
        if self.config_hash and st.get("config_hash") and st["config_hash"] != self.config_hash:
            raise CheckpointError(
                f"--resume: checkpoint {path} was written by a run with another configuration "
                "(resolved config hash differs); use a new --output-dir or the original config"
            )
        unwrapped = self.accelerator.unwrap_model(self.module)
        ckpt.load_module(unwrapped.student, data["model"])
        ckpt.load_module(unwrapped.recipe, data["objectives"])
        optimizer.load_state_dict(data["optimizer"])
        scheduler.load_state_dict(data["scheduler"])
        for k in vars(self.state):
            if k in st:
                setattr(self.state, k, st[k])
        self.recipe.load_schedule_state(st["recipe"])
        self._pending_rng = ckpt.rank_rng(st, data["rng"], self.accelerator.process_index)
        # mid-epoch: objective state (e.g. RAIL's per-batch draw) as of the checkpoint, re-applied
        # after start_epoch; at an epoch boundary start_epoch derives the new epoch's state itself
        self._pending_objective_state = st["recipe"].get("objectives", {}) if self.state.position > 0 else None
        if self.is_main:  # drop log lines written after this checkpoint by the interrupted run
            p = self.output_dir / "log.jsonl"
            if p.exists() and p.stat().st_size > self.state.log_offset:
                with open(p, "r+b") as fh:
                    fh.truncate(self.state.log_offset)
            best = self.ckpt_dir / "best"
            reason = ckpt.verify_dir(best) if best.exists() else None
            if reason is not None or (self.state.best_step >= 0 and not best.exists()):
                log.warning("the best-model checkpoint is %s; the best model will be chosen again from the "
                            "evaluations after step %d", reason or "missing", self.state.global_step)
                shutil.rmtree(best, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        if not (self.ckpt_dir / "best").exists():
            self.state.best_score, self.state.best_step, self.state.best_epoch = -math.inf, -1, -1
        if self.is_main:
            log.info("resumed from %s (epoch %d, step %d)", path.name, self.state.epoch, self.state.global_step)
        return True
