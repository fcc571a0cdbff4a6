"""The orchestrator: config loading, the run directory and its manifest, the `s2s` CLI."""
