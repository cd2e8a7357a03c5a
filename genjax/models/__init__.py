"""Networks, one file per family. Pure flax.linen modules; training lives in genjax.methods."""
