"""Training: the loop, one optimizer step, schedules, validation and checkpoint keeping,
the resumable training state, mixed precision and distributed ranks.
"""
