"""Rollouts: run the zoom graph with the policy and record what it sampled, token by token.

`engine.RolloutEngine` runs the agent; `sampler` (transformers) and `vllm_engine` (vLLM)
sample the policy's replies; `render` splices sampled ids into the chat template so every
prompt is token-exact; `trajectory.Trajectory` is the frozen record a rollout produces.
"""
