"""Bounds and pressures of a breadth-depth-time lattice (the ``[model.lattice]`` table)."""

from __future__ import annotations

import dataclasses

from brainres.settings import Boolean, Choice, Integer, Real, Settings, SettingsError, setting

_POSITIVE = Integer(low=1)
_NON_NEGATIVE = Real(low=0)
_OPEN_FRACTION = Real(low=0, high=1, low_open=True, high_open=True)


@dataclasses.dataclass(frozen=True)
class LatticeConfig(Settings):
    """Bounds and pressures of a lattice model.

    ``in_channels`` and ``n_classes`` follow from the data (a pipeline sets them
    from ``[[model]] in_channels`` and ``classes``); the rest is the network.

    Parameters
    ----------
    readout : {"pooled", "center"}
        ``"pooled"``: the readout sees every layer, pooled (a shallow answer
        is possible at once). ``"center"``: it sees only the top layer at the
        central pixel (2 x 2 for even sizes), a fovea whose receptive field
        must be built by open layers (depth) or lateral recurrence (time), so
        depth and time can stand in for each other (docs/lattice.md).
    unrolling : {"biological", "sweep"}
        ``"biological"``: every connection takes one step, so layer l sees
        the layer below as it was at the previous step and depth unfolds in
        time. ``"sweep"``: a full bottom-up sweep at every step; time then only
        adds lateral refinement.
    halting : {"confidence", "features"}
        ``"confidence"``: the halting logit at step n is
        ``slope * certainty_n + bias_n`` with certainty = 1 - normalised
        entropy of the readout, a learned slope kept positive and a learned
        bias per step, so halting is input-dependent by construction.
        ``"features"``: a free linear head on the pooled states, entropy and
        confidence (PonderNet's form).

    The remaining fields are documented in their declarations (``brainres
    family lattice --show-config`` lists them with defaults and ranges).
    """

    in_channels: int = setting(1, _POSITIVE, "image channels (1 grey, 3 colour)")
    n_classes: int = setting(10, Integer(low=2), "number of output classes")
    max_channels: int = setting(16, _POSITIVE, "width bound: channels per layer before any die")
    max_layers: int = setting(3, _POSITIVE, "depth bound: number of gated recurrent layers")
    max_steps: int = setting(6, _POSITIVE, "time bound: number of recurrent steps")
    kernel_size: int = setting(3, _POSITIVE, "side of the square convolution kernels (odd)")
    readout_pool: int = setting(2, _POSITIVE, "pooled readout: each layer average-pooled to this grid side")
    readout: str = setting("pooled", Choice("pooled", "center"), "what the readout sees (see above)")
    unrolling: str = setting("biological", Choice("biological", "sweep"), "how depth unfolds in time")
    halting: str = setting("confidence", Choice("confidence", "features"), "what the halting head reads")
    top_down: bool = setting(False, Boolean(), "add top-down convolutions from the layer above")
    stem_stride: int = setting(1, Integer(low=1, high=2),
                               "stride of the stem convolution (2: the first maps have half the image's side)")
    downsample: bool = setting(False, Boolean(),
                               "each layer works at half the side of the one below (2 x 2 average pooling of "
                               "its bottom-up input; the stem's maps are pooled for the first layer)")
    lambda_breadth: float = setting(0.0, _NON_NEGATIVE, "weight of the breadth cost (rank-weighted L1 of channel gates)")
    lambda_depth: float = setting(0.0, _NON_NEGATIVE, "weight of the depth cost (sum of layer gates)")
    lambda_time: float = setting(0.0, _NON_NEGATIVE, "weight of the time cost (expected halting step)")
    halting_prior: float = setting(0.2, _OPEN_FRACTION, "per-step halting probability of the geometric prior")
    beta_kl: float = setting(0.01, _NON_NEGATIVE, "weight of KL(halting distribution || geometric prior)")
    gate_threshold: float = setting(0.05, _NON_NEGATIVE, "a channel whose |gate| is below this counts as dead")
    depth_threshold: float = setting(0.5, _OPEN_FRACTION, "a layer whose depth gate is below this counts as closed")

    def check_together(self) -> None:
        if self.kernel_size % 2 == 0:
            raise SettingsError([f"kernel_size: expected an odd integer, got {self.kernel_size}"])

    @property
    def pressures(self) -> dict:
        """The three resource pressures as a mapping (as exports record them)."""
        return {"lambda_breadth": self.lambda_breadth, "lambda_depth": self.lambda_depth,
                "lambda_time": self.lambda_time}


def describe(config: LatticeConfig) -> str:
    """One methods sentence about the network, from the recorded configuration."""
    return (
        f"the breadth-depth-time lattice (at most {config.max_channels} channels, {config.max_layers} layers and "
        f"{config.max_steps} recurrent steps; {config.unrolling} unrolling, {config.readout} readout"
        f"{', top-down connections' if config.top_down else ''}"
        f"{', a stem of stride 2' if config.stem_stride == 2 else ''}"
        f"{', each layer at half the resolution of the one below' if config.downsample else ''}; pressures lambda_breadth = {config.lambda_breadth:g}, "
        f"lambda_depth = {config.lambda_depth:g}, lambda_time = {config.lambda_time:g}; {config.halting} halting "
        f"with a geometric prior of {config.halting_prior:g} weighted {config.beta_kl:g})"
    )
