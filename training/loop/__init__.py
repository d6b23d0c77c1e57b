"""The training loop: data stream, scoring, the policy update, checkpoints, ranks, metrics."""
