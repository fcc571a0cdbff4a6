"""Parallel text in, token ids out: prepare (clean and align), SentencePiece tokenization,
Arrow tables, memory-mapped token ids, and length-bucketed batches. `vocab` holds the
special token ids and the one rule that puts previous lines in front of a source line.
"""
