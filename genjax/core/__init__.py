"""The foundation every layer above builds on: the train state, optimizers, mesh and
shardings, checkpoints, metric writers, batching, and the CPU runtime settings
(malloc, XLA:CPU's convolution library). Nothing here imports another genjax package
except `genjax.core` itself.
"""
