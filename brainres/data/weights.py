"""Reading a user's trained weights into a model: safely, with errors that name the file and the keys."""

from __future__ import annotations

from pathlib import Path

import torch

from brainres.errors import DataFileError


def read_state_dict(path) -> dict:
    """The ``state_dict`` saved in ``path`` (``torch.save(model.state_dict(), path)``).

    Loaded with ``weights_only=True``: a weights file cannot run code. A
    checkpoint dict holding the weights under ``"state_dict"`` or ``"model"``
    (as brainres, Lightning and many training scripts save them) is accepted too.
    """
    path = Path(path)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataFileError(path, "no such weights file") from None
    except Exception as err:  # pickle, zip and torch errors all mean "not a weights file we can read safely"
        raise DataFileError(path, f"not a readable PyTorch weights file with weights_only=True "
                                  f"({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFileError(path, "does not hold a state_dict (a mapping of parameter names to tensors); save it "
                                  "with torch.save(model.state_dict(), path)")
    return state


def load_weights(path, model: torch.nn.Module) -> torch.nn.Module:
    """Load the weights in ``path`` into ``model``; every missing, unexpected or misshapen key is named."""
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in set(state) & set(expected)
                       if state[k].shape != expected[k].shape)
    if missing or unexpected or misshapen:
        parts = [f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("shape differs", misshapen)) if keys]
        raise DataFileError(path, "weights do not fit the model built by the factory (" + "; ".join(parts) + ")")
    model.load_state_dict(state, strict=True)
    return model
