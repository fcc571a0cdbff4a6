"""One optimizer step, with autocast, the fp16 gradient scaler, clipping and per-layer
gradient norms."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from stages.corpus.batching import Batch
from stages.corpus.vocab import PAD_ID
from stages.model.seq2seq import Seq2Seq

if TYPE_CHECKING:
    from stages.train.config import TrainConfig


def train_step(
    model: Seq2Seq | DistributedDataParallel, optimizer: torch.optim.Optimizer, batches: Batch | list[Batch],
    cfg: TrainConfig, amp: torch.dtype | None, dev_type: str, want_norms: bool = False,
    scaler: torch.amp.GradScaler | None = None, tokens: int | None = None, world: int = 1,
) -> tuple[float, dict[str, float]]:
    """One optimizer step over one batch, or over several whose gradients accumulate
    (`training.accumulate`): the loss is the token mean over all of them, so the step is
    the one a single batch holding them all would take. With `want_norms`, also the
    gradient norm of each layer before clipping (how vanishing or exploding gradients
    show up in the history).

    Under DistributedDataParallel (`world` ranks), `tokens` is the target-token count of
    the step's batches on all ranks together; each rank's loss is scaled by `world` so
    that DDP's gradient average is the gradient of the token mean over all of them.

    With a `scaler` (fp16), the loss is scaled before backward and the gradients
    unscaled before clipping; a step whose gradients overflowed is skipped and the
    scale lowered.
    """
    group = batches if isinstance(batches, list) else [batches]
    tokens = tokens or sum(b.n_tokens for b in group)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, b in enumerate(group):
        # DDP averages gradients over ranks once, after the step's last backward.
        last = i == len(group) - 1
        sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not last else nullcontext()
        with sync:
            with torch.autocast(dev_type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                if cfg.context_margin > 0 and b.contrasted is not None:
                    summed = context_margin_loss(model, b, cfg.label_smoothing, cfg.context_margin)
                else:
                    summed = model(b.src, b.src_lens, b.tgt_in, b.tgt_out, cfg.label_smoothing)
            loss = summed * (world / tokens)
            (scaler.scale(loss) if scaler is not None else loss).backward()
        total += float(loss.detach()) / world
    if scaler is not None:
        scaler.unscale_(optimizer)  # clip (and report) the true gradients
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    norms = layer_grad_norms(inner) if want_norms else {}
    if cfg.clip_value > 0:
        torch.nn.utils.clip_grad_value_(model.parameters(), cfg.clip_value)
    if cfg.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return total, norms


def context_margin_loss(model: Seq2Seq | DistributedDataParallel, b: Batch, smoothing: float,
                        margin: float) -> torch.Tensor:
    """The summed label-smoothed loss of batch `b` plus the context-aware margin of Jean
    and Cho (2019), "Context-Aware Learning for Neural Machine Translation"
    (arXiv:1903.04715), at the sentence level: for each pair whose source holds a
    context and was given another pair's (`b.contrasted`), the hinge
    max(0, margin x pieces - (log p(y | x, own context) - log p(y | x, other context))),
    in nats, pieces counting the target's EOS. A model that ignores its context pays
    margin x pieces for every such pair. `b.contrast_src`/`contrast_lens` (B, S') hold
    the sources behind the other contexts (`stages.corpus.batching.swapped_contexts`).
    Both halves go through one forward call (one DDP forward per backward); the
    log-probabilities cost a log-softmax over every real target position of both."""
    assert b.contrast_src is not None and b.contrast_lens is not None and b.contrasted is not None
    n, width = b.src.size(0), max(b.src.size(1), b.contrast_src.size(1))
    src = torch.cat([F.pad(s, (0, width - s.size(1)), value=PAD_ID) for s in (b.src, b.contrast_src)])
    out = model(src, torch.cat([b.src_lens, b.contrast_lens]), b.tgt_in.repeat(2, 1), b.tgt_out.repeat(2, 1),
                smoothing, loss_rows=n)  # (1 + 2B,): the loss of the first B, then log p(y | x, context)
    sums = out[1:]
    pieces = (b.tgt_out != PAD_ID).sum(dim=1)
    hinge = torch.relu(margin * pieces - (sums[:n] - sums[n:]))
    return out[0] + hinge[b.contrasted].sum()


def _layer_of(param_name: str) -> str:
    """`encoder.layers.0.1.weight_hh_l0` -> `encoder.layers.0.1` (layer 0, backward
    direction); `encoder.embed.weight` -> `encoder.embed`; `generator.bias` -> `generator`."""
    parts = param_name.split(".")[:-1]
    if parts[:2] == ["encoder", "layers"]:
        return ".".join(parts[:4])
    return ".".join(parts[:2] if parts[0] == "encoder" else parts[:1])


def layer_grad_norms(model: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the gradients of each layer (`encoder.layers.0.1`, `decoder_rnn`, ...)."""
    squares: dict[str, float] = {}
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        layer = _layer_of(name)
        squares[layer] = squares.get(layer, 0.0) + float(param.grad.detach().float().pow(2).sum())
    return {layer: round(math.sqrt(value), 6) for layer, value in squares.items()}
