"""Subtitle files: formats (SRT, VTT, ASS through pysubs2), cue text and markup, and the
translation of a whole document keeping every cue and its timing.
"""
