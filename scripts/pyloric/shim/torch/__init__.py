"""Minimal stand-in for torch, so that `pyloric` imports without torch.

`pyloric.simulate` and `pyloric.summary_stats` never use torch; the package imports
it only for type checks (`isinstance(x, Tensor)` in `to_pyloric_pd`) and for
`create_prior` (sbi's BoxUniform), which the fixture generator does not call: it
draws from the package's own `prior_bounds` with numpy instead.
"""


class Tensor:  # never instantiated; only used in isinstance checks
    pass


def tensor(*args, **kwargs):
    raise NotImplementedError("torch shim: use the numpy path")


as_tensor = tensor
float32 = "float32"
