"""The pipeline's stages: each one a function over files in its own run folder.

Stages never import Click and never touch the run manifest; the orchestrator in
`pipeline/` orders them and keeps the books.
"""
