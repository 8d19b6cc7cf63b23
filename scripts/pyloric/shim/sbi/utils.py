"""Minimal stand-in for sbi.utils: BoxUniform is only used by pyloric.create_prior."""


class BoxUniform:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("sbi shim: draw from pyloric.prior.prior_bounds")
