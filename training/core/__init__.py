"""The pure core of GRPO: rewards, token masks, credit assignment, the policy loss.

Torch and the protocol/span floors only: no model, no files, no I/O. Every function here
takes tensors or parsed answers and returns tensors or numbers.
"""
