"""The sequential/parallel bottleneck autoencoder (the torch module of the ``seqpar`` family).

A feedforward encoder squeezes a static input vector through a bottleneck of
``bottleneck_width`` units at every step; a recurrent (GRU) decoder
accumulates the codes and reconstructs the input after every step. The
decoder is fed back to the encoder, so at step ``t`` the encoder knows what
the decoder already knows and can spend the narrow channel on what is still
missing. By default the feedback is predictive-coding style: the encoder sees
the input minus the decoder's current reconstruction (the residual); the
decoder's reconstruction or its hidden state, concatenated to the input, are
the alternatives. Without feedback the encoder sees the same input at every
step and (with deterministic codes) sends the same code again.

Two bottlenecks:

- ``"discrete"``: binary units, ``+1``/``-1``. Training uses straight-through
  Gumbel (binary concrete) samples: the forward pass uses the hard sign of the
  noisy logit, the backward pass the gradient of its relaxed sigmoid.
  Evaluation uses the noiseless sign of the logit, so codes are deterministic
  functions of the input.
- ``"continuous"``: ``tanh`` units plus Gaussian noise of ``noise_std`` (the
  noise limits how much each unit can carry).

The model takes tensors and returns tensors; it knows nothing of files,
datasets or statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from brainres.errors import BrainresError

BOTTLENECKS = ("discrete", "continuous")
FEEDBACK_SIGNALS = ("residual", "reconstruction", "state")


class SeqParError(BrainresError, ValueError):
    """A sequential/parallel setting, model or request that cannot be carried out."""


def all_binary_vectors(input_dim: int) -> torch.Tensor:
    """Every binary vector of length ``input_dim``, as a float tensor of 0/1.

    Row ``i`` is the binary expansion of ``i`` with the most significant bit
    first, so ``all_binary_vectors(3)[5]`` is ``[1, 0, 1]``.
    """
    if not isinstance(input_dim, int) or not 1 <= input_dim <= 16:
        raise SeqParError(f"input_dim must be an integer between 1 and 16, got {input_dim!r}")
    index = torch.arange(2**input_dim).unsqueeze(1)
    powers = 2 ** torch.arange(input_dim - 1, -1, -1)
    return ((index // powers) % 2).to(torch.float32)


def straight_through_binary(
    logits: torch.Tensor, *, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Straight-through Gumbel (binary concrete) sample in ``{-1, +1}``.

    Forward: ``sign(logits + logistic noise)``. Backward: the gradient of
    ``2 * sigmoid((logits + noise) / temperature) - 1``.
    """
    uniform = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp(1e-6, 1 - 1e-6)
    logistic_noise = torch.log(uniform) - torch.log1p(-uniform)
    relaxed = 2 * torch.sigmoid((logits + logistic_noise) / temperature) - 1
    hard = torch.where(logits + logistic_noise > 0, 1.0, -1.0).to(logits.dtype)
    return hard + relaxed - relaxed.detach()


class SeqParAutoencoder(nn.Module):
    """Encoder -> width-k bottleneck -> recurrent decoder, with decoder-to-encoder feedback.

    Parameters
    ----------
    input_dim : int
        Length ``D`` of the input vectors (0/1 entries).
    bottleneck_width : int
        Units ``k`` in the bottleneck at every step.
    n_steps : int
        Steps the input is held for (one code per step).
    hidden_size : int
        Units of the encoder's hidden layer and of the decoder's GRU state.
    bottleneck : {"discrete", "continuous"}
    feedback : bool
        Feed the decoder from step ``t-1`` back to the encoder at step ``t``.
        When False the encoder receives zeros in its place (same parameters,
        no information about the decoder).
    feedback_signal : {"residual", "reconstruction", "state"}
        What is fed back. ``"residual"``: the encoder's input is the signed
        input (+-1) minus the decoder's current reconstruction mapped to
        [-1, 1] (0 = undecided), i.e. what is not yet predicted; before the
        first code the reconstruction is the decoder's prior (readout of its
        zero state).
        ``"reconstruction"``: that reconstruction, concatenated to the input.
        ``"state"``: the decoder's GRU state, concatenated to the input.
    noise_std : float
        Standard deviation of the Gaussian noise on continuous codes.
    temperature : float
        Relaxation temperature of the straight-through Gumbel samples.
    """

    def __init__(
        self,
        *,
        input_dim: int,
        bottleneck_width: int,
        n_steps: int,
        hidden_size: int = 64,
        bottleneck: str = "discrete",
        feedback: bool = True,
        feedback_signal: str = "residual",
        noise_std: float = 0.5,
        temperature: float = 1.0,
    ):
        super().__init__()
        for name, value in (("input_dim", input_dim), ("bottleneck_width", bottleneck_width),
                            ("n_steps", n_steps), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or value < 1:
                raise SeqParError(f"{name} must be a positive integer, got {value!r}")
        if bottleneck not in BOTTLENECKS:
            raise SeqParError(f"bottleneck must be one of {BOTTLENECKS}, got {bottleneck!r}")
        if feedback_signal not in FEEDBACK_SIGNALS:
            raise SeqParError(f"feedback_signal must be one of {FEEDBACK_SIGNALS}, got {feedback_signal!r}")
        if noise_std < 0 or temperature <= 0:
            raise SeqParError(
                f"noise_std must be >= 0 and temperature > 0, got noise_std={noise_std}, temperature={temperature}"
            )
        self.input_dim = input_dim
        self.bottleneck_width = bottleneck_width
        self.n_steps = n_steps
        self.hidden_size = hidden_size
        self.bottleneck = bottleneck
        self.feedback = bool(feedback)
        self.feedback_signal = feedback_signal
        self.noise_std = float(noise_std)
        self.temperature = float(temperature)
        self.encoder = nn.Sequential(
            nn.Linear(input_dim + {"state": hidden_size, "reconstruction": input_dim, "residual": 0}[feedback_signal],
                      hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, bottleneck_width),
        )
        self.decoder = nn.GRUCell(bottleneck_width, hidden_size)
        self.readout = nn.Linear(hidden_size, input_dim)

    def encode(self, inputs: torch.Tensor, decoder_state: torch.Tensor, belief: torch.Tensor) -> torch.Tensor:
        """Bottleneck pre-activations (logits) for one step.

        ``belief`` is the decoder's current reconstruction mapped to [-1, 1]
        (0 = undecided); ``decoder_state`` its hidden state.
        """
        fed_back = decoder_state if self.feedback_signal == "state" else belief
        if not self.feedback:
            fed_back = torch.zeros_like(fed_back)
        if self.feedback_signal == "residual":
            # Predictive coding: the encoder sees only what the decoder does not yet predict.
            return self.encoder(2 * inputs - 1 - fed_back)
        return self.encoder(torch.cat([2 * inputs - 1, fed_back], dim=1))

    def quantise(self, code_logits: torch.Tensor, *, stochastic: bool, generator) -> torch.Tensor:
        """Turn pre-activations into the code the decoder receives."""
        if self.bottleneck == "discrete":
            if stochastic:
                return straight_through_binary(code_logits, temperature=self.temperature, generator=generator)
            return torch.where(code_logits > 0, 1.0, -1.0).to(code_logits.dtype)
        code = torch.tanh(code_logits)
        if stochastic and self.noise_std > 0:
            code = code + self.noise_std * torch.randn(code.shape, generator=generator, dtype=code.dtype)
        return code

    def forward(
        self,
        inputs: torch.Tensor,
        *,
        stochastic: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run all steps.

        Parameters
        ----------
        inputs : torch.Tensor
            ``(batch, input_dim)`` of 0/1 values.
        stochastic : bool
            Sample the bottleneck (training; continuous codes at evaluation
            too). False gives deterministic codes: the sign of the logit for
            discrete units, the noiseless ``tanh`` for continuous ones.
        generator : torch.Generator, optional
            Source of the bottleneck noise.

        Returns
        -------
        dict
            ``reconstruction_logits`` ``(batch, step, input_dim)``,
            ``codes`` ``(batch, step, width)`` (what the decoder received),
            ``code_logits`` ``(batch, step, width)``.
        """
        if inputs.ndim != 2 or inputs.shape[1] != self.input_dim:
            raise SeqParError(
                f"inputs must have shape (batch, {self.input_dim}), got {tuple(inputs.shape)}"
            )
        state = inputs.new_zeros(inputs.shape[0], self.hidden_size)
        # Before any code arrives the decoder already predicts its prior (the readout of the empty state).
        belief = torch.tanh(self.readout(state) / 2)
        reconstructions, codes, code_logits = [], [], []
        for _ in range(self.n_steps):
            logits = self.encode(inputs, state, belief)
            code = self.quantise(logits, stochastic=stochastic, generator=generator)
            state = self.decoder(code, state)
            reconstruction = self.readout(state)
            belief = torch.tanh(reconstruction / 2)  # = 2 * sigmoid(reconstruction) - 1
            reconstructions.append(reconstruction)
            codes.append(code)
            code_logits.append(logits)
        return {
            "reconstruction_logits": torch.stack(reconstructions, dim=1),
            "codes": torch.stack(codes, dim=1),
            "code_logits": torch.stack(code_logits, dim=1),
        }


def reconstruction_loss(
    reconstruction_logits: torch.Tensor, inputs: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of the reconstruction in bits, summed over input bits, averaged over steps.

    ``weights`` (``(batch,)``, summing to one) is the input distribution;
    uniform when omitted. Summing over every step rewards sending information
    early, which is what makes the code parallel when it can be.
    """
    targets = inputs.unsqueeze(1).expand_as(reconstruction_logits)
    per_item = nn.functional.binary_cross_entropy_with_logits(
        reconstruction_logits, targets, reduction="none"
    ).sum(-1).mean(-1) / torch.log(torch.tensor(2.0))
    if weights is None:
        return per_item.mean()
    return (per_item * weights).sum()
