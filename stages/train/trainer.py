"""Stage 3, train: teacher-forced training with validation, best-checkpoint keeping,
LR schedules, early stopping, and resuming from the `last` checkpoint."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from stages import artifacts
from stages.corpus.batching import Batch, EpochBatches, TrainData
from stages.corpus.token_ids import output_pieces, writes_separator
from stages.corpus.tokenization import load_processor
from stages.decode.translation import checkpoint_output_pieces
from stages.devices import device_type, pick_device
from stages.errors import TrainingInterrupted
from stages.model.checkpoint import (
    check_tokenizer,
    initialize_from,
    load_checkpoint,
    read_meta,
)
from stages.model.config import ModelConfig
from stages.model.fast import cpu_kernels, record
from stages.model.seq2seq import Seq2Seq
from stages.train import distributed
from stages.train.board import TrainingBoard
from stages.train.config import TrainConfig
from stages.train.precision import make_scaler, pick_precision
from stages.train.progress import StopRequest, TrainProgress
from stages.train.schedule import current_lr
from stages.train.state import (
    LoopState,
    ResumeOptions,
    SavedTraining,
    check_resume,
    load_train_state,
    save_train_state,
)
from stages.train.step import train_step
from stages.train.validation import (
    CheckpointKeeper,
    Validator,
    dev_metric,
    out_of_patience,
)

log = logging.getLogger(__name__)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer, with PyTorch's fused kernel: one pass over each parameter instead
    of one per operation."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)


def epoch_batches(data: TrainData, cfg: TrainConfig, rng: np.random.Generator) -> EpochBatches:
    """One epoch's length-bucketed batches, by `training.batch_type`, in shuffled order."""
    sentences = cfg.batch_sentences if cfg.batch_type == "sentences" else 0
    return data.batches(cfg.batch_tokens, rng, batch_sentences=sentences, multiple=cfg.pad_multiple,
                        context_dropout=cfg.context_dropout, coword_dropout=cfg.coword_dropout,
                        contrast=cfg.context_margin > 0)


def run_train(
    model_cfg: ModelConfig, cfg: TrainConfig, tokenize_dir: Path, prepare_dir: Path, out_dir: Path, seed: int,
    upstream: dict[str, Any] | None = None, resume: ResumeOptions | None = None, init_from: Path | None = None,
) -> dict[str, Any]:
    """Train from scratch (from the weights of checkpoint `init_from` when given, with a
    fresh optimizer and schedule), or with `resume` go on from train/last; write
    train/best, train/last (with the training state) and history.jsonl.

    `upstream` holds the `data` and `tokenizer` config sections, recorded with the
    training state so that a resume can refuse a run whose inputs changed.
    """
    config = {"seed": seed, "model": dataclasses.asdict(model_cfg), "training": dataclasses.asdict(cfg), **(upstream or {})}
    saved = None
    if resume is not None:
        last = out_dir / artifacts.CKPT_LAST
        check_resume(last, config, resume)
        check_tokenizer(last, tokenize_dir)
        saved = load_train_state(last)
    trainer = _Trainer(model_cfg, cfg, tokenize_dir, prepare_dir, out_dir, seed, config, saved, init_from)
    stopped = trainer.run()
    return trainer.summary(stopped)


def fast_paths() -> dict[str, Any]:
    """Which optimised paths ran since the tally was last reset (stages/model/fast/)."""
    return {"cpu_kernels": cpu_kernels.status(), "ran": record.tally()}


class _Trainer:
    """The objects of one training run and the loop over them."""

    def __init__(
        self, model_cfg: ModelConfig, cfg: TrainConfig, tokenize_dir: Path, prepare_dir: Path, out_dir: Path,
        seed: int, config: dict[str, Any], saved: SavedTraining | None, init_from: Path | None = None,
    ):
        self.cfg, self.config = cfg, config
        self.ranks = distributed.from_env()
        distributed.barrier(self.ranks)  # rank 0 has cleared (or kept, on resume) the train folder
        self.device = distributed.device_for(self.ranks, pick_device(cfg.device))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(seed)
        self.amp = pick_precision(cfg.precision, self.device)
        self.dev_type = device_type(self.device)
        self.scaler = make_scaler(self.amp, self.device)
        self.data = TrainData.load(artifacts.split_ids(tokenize_dir, "train"), cfg.max_len)
        sp_src = load_processor(tokenize_dir / artifacts.SPM_SRC)
        sp_tgt = load_processor(tokenize_dir / artifacts.SPM_TGT)
        self.model = Seq2Seq(model_cfg, sp_src.get_piece_size(), sp_tgt.get_piece_size()).to(self.device)
        self.parent: dict[str, Any] | None = None
        if init_from is not None:  # before the optimizer and DDP see the weights
            self.parent = initialize_from(self.model, init_from, tokenize_dir)
            log.info("training starts from the weights of %s (step %s), with a fresh optimizer and schedule",
                     init_from, self.parent["step"])
        self.net: Seq2Seq | DistributedDataParallel = self.model
        if self.ranks.active:
            ids = [self.ranks.local_rank] if self.device.startswith("cuda") else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(self.model, cfg)
        self.validate = Validator(tokenize_dir, prepare_dir, cfg, self.device)
        pieces = self._output_pieces(init_from)
        self.keeper = CheckpointKeeper(out_dir, tokenize_dir, cfg, resume_step=saved.loop.step if saved else None,
                                       output_pieces=pieces, data=config.get("data"))
        self.model.target_context = writes_separator(pieces)  # dev BLEU searches as translation does
        self.progress = TrainProgress()
        self.board = TrainingBoard(out_dir, cfg.tensorboard and self.ranks.main,
                                   resume_step=saved.loop.step if saved else None)
        record.reset()  # the summary tallies the optimised paths this training ran
        self.rng = np.random.default_rng(seed)
        self.loop = LoopState(epoch_rng=dict(self.rng.bit_generator.state))
        self.resumed_from: int | None = None
        if saved is not None:
            self._restore(saved)

    def _output_pieces(self, init_from: Path | None) -> list[int] | None:
        """The target pieces this model can produce: its training targets', and, when
        fine-tuned, its parent's too (None: every piece, for a parent that recorded none)."""
        pieces = output_pieces(self.data.tgt)
        if init_from is None:
            return pieces
        parent = checkpoint_output_pieces(init_from, read_meta(init_from))
        return None if parent is None else sorted(set(pieces) | set(parent))

    def _restore(self, saved: SavedTraining) -> None:
        weights = load_checkpoint(saved.folder)[0].state_dict()
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(saved.optimizer)
        if self.scaler is not None and saved.scaler is not None:
            self.scaler.load_state_dict(saved.scaler)
        self.loop, self.resumed_from = saved.loop, saved.loop.step
        self.keeper.restore(saved.loop.keeper)
        self.progress.restore(saved.loop.progress)
        saved.restore_rngs()  # last: building the model above drew from torch's generator
        log.info("resuming from %s at step %d (epoch %d)", saved.folder, self.loop.step, self.loop.epoch)

    def total_steps(self) -> int:
        return self.cfg.max_steps or self.cfg.epochs * self.loop.steps_per_epoch

    def run(self) -> str:
        """Train until a limit or early stopping; return why it stopped."""
        cfg, loop = self.cfg, self.loop
        bar = tqdm(initial=loop.step, desc="train", unit="step", disable=None if self.ranks.main else True,
                   dynamic_ncols=True)
        per_step = cfg.accumulate * self.ranks.world  # batches per optimizer step, all ranks together
        stopped = self._finished()
        with StopRequest() as request:
            while not stopped:
                self.rng.bit_generator.state = loop.epoch_rng
                batches = epoch_batches(self.data, cfg, self.rng)
                usable = len(batches) - len(batches) % self.ranks.world  # every rank gets a batch
                loop.steps_per_epoch = loop.steps_per_epoch or -(-usable // per_step)
                bar.total = self.total_steps()
                for start in range(loop.batch_in_epoch, usable, per_step):
                    group = batches[start : start + per_step]  # one optimizer step
                    last_of_epoch = start + len(group) >= usable
                    mine = group[self.ranks.rank :: self.ranks.world]
                    stopped = self._step(mine, len(group), last_of_epoch and loop.epoch >= cfg.epochs)
                    bar.update(1)
                    if loop.step % 20 == 0:
                        bar.set_postfix(loss=f"{self.progress.recent_loss():.3f}",
                                        tok_s=f"{self.progress.tokens_per_s():.0f}")
                    if request.signal_name is not None:
                        self._interrupted(request.signal_name, saved=loop.step % self._valid_every() == 0 or bool(stopped))
                    if stopped:
                        break
                if not stopped:
                    loop.epoch, loop.batch_in_epoch = loop.epoch + 1, 0
                    loop.epoch_rng = dict(self.rng.bit_generator.state)
                    stopped = "epochs" if loop.epoch > cfg.epochs else ""
        bar.close()
        self.board.close()
        distributed.barrier(self.ranks)  # no rank tears down the process group while another still works
        return stopped

    def _finished(self) -> str:
        """Why a resumed run has nothing left to do ("" when it has)."""
        if self.loop.epoch > self.cfg.epochs:
            return "epochs"
        if self.loop.steps_per_epoch and self.loop.step >= self.total_steps():
            return "max_steps"
        return "early_stopping" if self._out_of_patience() else ""

    def _valid_every(self) -> int:
        return self.cfg.valid_every or self.loop.steps_per_epoch

    def _step(self, batches: list[Batch], consumed: int, last_of_run: bool) -> str:
        """One optimizer step over this rank's `batches` (training.accumulate of them) of
        the `consumed` batches all ranks take; validation when due; return why training
        stops ("" to go on)."""
        cfg, loop, ranks = self.cfg, self.loop, self.ranks
        for group in self.optimizer.param_groups:
            group["lr"] = current_lr(loop.step, cfg, self.total_steps(), loop.plateau)
        validating = (loop.step + 1) % self._valid_every() == 0
        tokens = int(distributed.total(ranks, sum(b.n_tokens for b in batches), self.device))
        loss, norms = train_step(self.net, self.optimizer, [b.to(self.device) for b in batches], cfg, self.amp,
                                 self.dev_type, validating, self.scaler, tokens=tokens, world=ranks.world)
        loop.step, loop.batch_in_epoch = loop.step + 1, loop.batch_in_epoch + consumed
        self.progress.record(distributed.total(ranks, loss, self.device), tokens)
        if loop.step % cfg.log_every == 0:
            self.board.step(loop.step, self.progress.recent_loss(), self.optimizer.param_groups[0]["lr"],
                            self.progress.tokens_per_s())
        stop = ""
        if loop.step >= self.total_steps():
            stop = "max_steps"
        elif cfg.max_minutes and self.progress.elapsed() > cfg.max_minutes * 60:
            stop = "max_minutes"
        elif last_of_run:
            stop = "epochs"
        stop = distributed.from_main(ranks, stop)  # e.g. max_minutes: rank 0's clock decides
        if loop.step % self._valid_every() == 0 or stop:
            if ranks.main:  # validation, history and checkpoints: rank 0 alone
                record = {"step": loop.step, "epoch": loop.epoch, **self.progress.summary(),
                          "lr": self.optimizer.param_groups[0]["lr"]}
                if norms:
                    record["grad_norms"] = norms
                if self._validation(record) and not stop:
                    stop = "early_stopping"
            stop, loop.plateau = distributed.from_main(ranks, (stop, loop.plateau))
        return stop

    def _validation(self, record: dict[str, Any]) -> bool:
        """Validate, adjust a plateau schedule, save checkpoints; True to stop early."""
        cfg, loop = self.cfg, self.loop
        record.update(self.validate(self.model, self.amp))
        for key in ("dev_loss", "dev_bleu"):
            if key in record:
                loop.dev_scores.setdefault(key, []).append(record[key])
        if cfg.schedule == "plateau":
            key = dev_metric(cfg.plateau_metric, cfg.valid_bleu)
            if loop.plateau.observe(record[key], key == "dev_bleu", cfg):
                record["lr_reduced_to"] = current_lr(loop.step, cfg, self.total_steps(), loop.plateau)
                log.info("%s did not improve in %d validations: lr reduced to %g",
                         key, cfg.plateau_patience, record["lr_reduced_to"])
        stop = self._out_of_patience()
        if stop:
            log.info("early stop: no better %s in %d validations",
                     dev_metric(cfg.early_stopping_metric, cfg.valid_bleu), cfg.patience)
        self.keeper(self.model, record, self._write_state)
        self.board.validation(record)
        return stop

    def _out_of_patience(self) -> bool:
        key = dev_metric(self.cfg.early_stopping_metric, self.cfg.valid_bleu)
        return out_of_patience(self.loop.dev_scores.get(key, []), key == "dev_bleu", self.cfg.patience)

    def _write_state(self, folder: Path) -> None:
        self.loop.keeper = self.keeper.snapshot()
        self.loop.progress = self.progress.snapshot()
        save_train_state(folder, self.optimizer, self.scaler, self.loop, self.config)

    def _interrupted(self, signal_name: str, saved: bool) -> None:
        """Save `last` with the training state (unless this step's validation just did), stop."""
        if not saved and self.ranks.main:
            self.keeper.save_last(self.model, self.loop.step, self.loop.epoch, self._write_state)
        self.board.close()
        raise TrainingInterrupted(
            f"training stopped by {signal_name} at step {self.loop.step}; its state is saved in "
            f"{self.keeper.out_dir / artifacts.CKPT_LAST}: continue it with the same config and --resume"
        )

    def summary(self, stopped: str) -> dict[str, Any]:
        out = {
            "steps": self.loop.step,
            "epochs": min(self.loop.epoch, self.cfg.epochs),
            "stopped": stopped,
            "train_pairs": len(self.data.src),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "precision": str(self.amp).replace("torch.", "") if self.amp else "fp32",
            "device": self.device,
            "seconds": round(self.progress.elapsed(), 1),
            "target_tokens_per_s": round(self.progress.tokens_per_s(), 1),
            "best": self.keeper.best,
            "paths": fast_paths(),
        }
        if self.resumed_from is not None:
            out["resumed_from_step"] = self.resumed_from
        if self.parent is not None:
            out["init_from"] = self.parent
        return out
