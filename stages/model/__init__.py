"""The recurrent encoder-decoder with attention.

`seq2seq.Seq2Seq` is the specification: every tensor operation of the model is written
there once, plainly. `fast/` holds the optimised paths that must compute the same values.
"""
