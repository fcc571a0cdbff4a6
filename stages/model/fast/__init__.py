"""Optimised paths of the model, each held equal to a reference by a test.

`stages/model/seq2seq.py` is the specification. Everything here computes what some
reference computes, in another order or another language, and the model dispatches to
it only where it applies (each module's `applies`); otherwise the reference runs.
`PATHS` says, for each path, what it must equal and which tests prove it
(tests/fast/test_registry.py checks that those tests exist). Every dispatch is tallied
in `record` under the path's name or its fallback's, and the train and translate
stages write the tally and `cpu_kernels.status()` into their summaries.

Modules: `search_step` (the search step from per-model weight tables), `int8` (its
batch-invariant int8 products), `stepwise` and
`feeding` (the input-feeding loop), `cells` (one step of a recurrent cell), `loss`
(label-smoothed cross-entropy in cache-sized blocks), `cpu_kernels` with the C++ in
`csrc/` (the LSTM cell, the input-feeding attention step and the loss, built on first
use), `record` (the tally).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FastPath:
    name: str  # as tallied in `record` and a run's summary
    fallback: str  # what runs where it does not apply
    code: str
    equals: str  # the reference it must equal
    proven_by: tuple[str, ...]  # tests, as path::function


PATHS = (
    FastPath(
        "search_step.tables", "search_step.reference", "stages/model/fast/search_step.py",
        "Seq2Seq.step's reference branch: one step of Seq2Seq._decode, then log-softmax "
        "(every cell, attention and depth, with and without input feeding, fp32 and bf16 autocast)",
        ("tests/fast/test_search_step.py::test_fast_step_equals_the_models_decoding",
         "tests/fast/test_search_step.py::test_fast_step_equals_the_models_decoding_under_bf16_autocast",
         "tests/fast/test_search_step.py::test_fast_step_for_a_model_built_under_inference_mode"),
    ),
    FastPath(
        "search_step.int8", "search_step.reference", "stages/model/fast/search_step.py, int8.py",
        "the fp32 search step within int8 rounding (decoding.quantize=int8), and batch-invariant bit for bit",
        ("tests/fast/test_int8.py::test_int8_step_is_close_to_the_fp32_step",
         "tests/fast/test_int8.py::test_a_rows_int8_product_does_not_depend_on_the_other_rows",
         "tests/fast/test_int8.py::test_int8_translation_is_batch_invariant"),
    ),
    FastPath(
        "input_feeding.stepwise", "input_feeding.reference", "stages/model/fast/feeding.py, stepwise.py",
        "Seq2Seq._decode_fed_reference: logits and every parameter's gradient",
        ("tests/fast/test_feeding.py::test_stepwise_loop_equals_the_reference",
         "tests/fast/test_feeding.py::test_stepwise_loop_equals_the_reference_under_bf16_autocast",
         "tests/fast/test_feeding.py::test_deferred_weight_gradients_equal_per_step_autograd",
         "tests/fast/test_stepwise.py::test_stepwise_equals_the_fused_module",
         "tests/fast/test_stepwise.py::test_stepwise_gradients_equal_the_fused_module_gradients"),
    ),
    FastPath(
        "input_feeding.attention_kernel", "input_feeding.stepwise", "csrc/attention.cpp via fast/feeding.py",
        "the stepwise loop's attention step on PyTorch operators, forward and backward",
        ("tests/fast/test_cpu_kernels.py::test_fused_attention_step_trains_like_the_operators",
         "tests/fast/test_cpu_kernels.py::test_fused_attention_step_decodes_like_the_operators",
         "tests/fast/test_cpu_kernels.py::test_fused_attention_step_with_a_frozen_encoder"),
    ),
    FastPath(
        "lstm_cell.kernel", "lstm_cell.operators", "csrc/lstm.cpp via fast/cells.py",
        "the LSTM cell on PyTorch operators (fast/cells.py), forward and backward",
        ("tests/fast/test_cpu_kernels.py::test_lstm_kernel_equals_the_operators",
         "tests/fast/test_cpu_kernels.py::test_lstm_kernel_extremes_saturate_without_nan"),
    ),
    FastPath(
        "cross_entropy.kernel", "cross_entropy.operators", "csrc/cross_entropy.cpp via fast/loss.py",
        "F.cross_entropy(logits.float(), target, ignore_index=PAD, label_smoothing=eps, reduction='sum')",
        ("tests/fast/test_loss.py::test_fused_loss_and_gradient_equal_cross_entropy",
         "tests/fast/test_loss.py::test_kernel_refuses_targets_outside_the_vocabulary"),
    ),
    FastPath(
        "cross_entropy.operators", "cross_entropy.operators", "stages/model/fast/loss.py",
        "F.cross_entropy(logits.float(), target, ignore_index=PAD, label_smoothing=eps, reduction='sum')",
        ("tests/fast/test_loss.py::test_fused_loss_and_gradient_equal_cross_entropy",
         "tests/fast/test_loss.py::test_fused_loss_without_gradient_and_with_fp16_logits"),
    ),
)

NAMES = frozenset(p.name for p in PATHS) | frozenset(p.fallback for p in PATHS)
