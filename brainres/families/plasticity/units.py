"""What happens to units during a run: their book (ids, births, removals), grow/prune events, continual backprop.

Every unit of every hidden layer has a stable id (its position changes when
units before it are removed). :class:`UnitBook` records when each unit was
born and removed and the tracked per-unit statistics; the functions below
apply one grow or prune event, one continual-backprop replacement step, and
measure the newborn/incumbent gradient ratio after an insertion.
"""

from __future__ import annotations

import torch

from brainres.families.plasticity.network import (
    lowest_units,
    magnitude_scores,
    unit_activation_summary,
)
from brainres.families.plasticity.structure import (
    adam_state_by_name,
    insert_units,
    merge_index_maps,
    reinitialize_units,
    remove_units,
    transplant_adam_state,
)


def make_optimizer(config, model):
    """Adam or SGD over the model's current parameters."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    return torch.optim.SGD(model.parameters(), lr=config.learning_rate)


def _rebuild_optimizer(config, model, optimizer, old_state: dict, index_maps: dict):
    fresh = make_optimizer(config, model)
    if config.optimizer == "adam":
        transplant_adam_state(old_state, model, fresh, index_maps, mode=config.optimizer_state)
    return fresh


class UnitBook:
    """Stable unit ids per hidden layer, their birth/removal steps and their tracked statistics."""

    def __init__(self, widths, generator: torch.Generator):
        self.generator = generator  # the run's generator, for structural draws
        self.ids = [list(range(w)) for w in widths]  # current position -> unit id
        self.next_id = list(widths)
        self.birth = [{u: 0 for u in range(w)} for w in widths]
        self.removal = [{} for _ in widths]
        self.rows: list[dict] = []

    def state(self) -> dict:
        """Plain values for a checkpoint (the generator is saved by the trainer)."""
        return {"ids": self.ids, "next_id": self.next_id, "birth": self.birth, "removal": self.removal,
                "rows": self.rows}

    def restore(self, state: dict) -> None:
        self.ids = [list(ids) for ids in state["ids"]]
        self.next_id = list(state["next_id"])
        self.birth = [{int(u): int(s) for u, s in layer.items()} for layer in state["birth"]]
        self.removal = [{int(u): int(s) for u, s in layer.items()} for layer in state["removal"]]
        self.rows = list(state["rows"])

    def add(self, layer, n, step):
        new = list(range(self.next_id[layer], self.next_id[layer] + n))
        self.next_id[layer] += n
        self.ids[layer].extend(new)
        self.birth[layer].update({u: step for u in new})
        return new

    def remove(self, layer, positions, step):
        gone = {self.ids[layer][p] for p in positions}
        self.removal[layer].update({u: step for u in gone})
        self.ids[layer] = [u for u in self.ids[layer] if u not in gone]

    def replace(self, layer, positions, step):
        for position in positions:
            old = self.ids[layer][position]
            self.removal[layer][old] = step
            new = self.next_id[layer]
            self.next_id[layer] += 1
            self.ids[layer][position] = new
            self.birth[layer][new] = step


def change_structure(config, model, optimizer, book, utility, step, batch):
    """Apply one grow or prune event to every changed layer; returns (optimizer, insertion event or None, rows)."""
    old_state = adam_state_by_name(model, optimizer)
    index_maps: dict = {}
    event = {"step": step, "layers": {}}
    rows = []
    for layer in config.change_layers:
        if config.schedule == "grow":
            incumbents = set(book.ids[layer])
            index_maps = merge_index_maps(index_maps, insert_units(
                model, layer, config.units_per_change, method=config.insertion, generator=book.generator,
                split_noise=config.split_noise, gradmax_batch=batch,
            ))
            newborn = set(book.add(layer, config.units_per_change, step))
            utility[layer] = torch.cat([utility[layer], torch.zeros(config.units_per_change)])
            event["layers"][layer] = (newborn, incumbents)
        else:
            scores = magnitude_scores(model, layer) if config.removal == "magnitude" else utility[layer]
            chosen = lowest_units(scores, config.units_per_change)
            index_maps = merge_index_maps(index_maps, remove_units(model, layer, chosen))
            book.remove(layer, chosen.tolist(), step)
            keep = torch.ones(utility[layer].numel(), dtype=torch.bool)
            keep[chosen] = False
            utility[layer] = utility[layer][keep]
        rows.append({"step": step, "layer": layer, "change": config.schedule, "width": model.widths[layer]})
    optimizer = _rebuild_optimizer(config, model, optimizer, old_state, index_maps)
    return optimizer, (event if config.schedule == "grow" else None), rows


def gradient_ratios(insertions, book, norms, step, window):
    """Rows of newborn/incumbent mean incoming-gradient norm for every insertion still in its window."""
    rows = []
    for index, event in enumerate(insertions):
        since = step - event["step"]
        if since >= window:
            continue
        for layer, (newborn, incumbents) in event["layers"].items():
            new_positions = [p for p, unit in enumerate(book.ids[layer]) if unit in newborn]
            old_positions = [p for p, unit in enumerate(book.ids[layer]) if unit in incumbents]
            if new_positions and old_positions:
                ratio = float(norms[layer][new_positions].mean() / norms[layer][old_positions].mean())
                rows.append({"insertion": index, "layer": layer, "steps_since_insertion": since, "step": step,
                             "gradient_ratio": ratio})
    return rows


def track_units(book, hidden, norms, utility, step):
    """Append one row per alive unit: activation statistics, incoming-gradient norm, utility."""
    for layer, activations in enumerate(hidden):
        mean, std, _ = unit_activation_summary(activations)
        for position, unit in enumerate(book.ids[layer]):
            book.rows.append({
                "step": step, "layer": layer, "unit": unit, "birth_step": book.birth[layer][unit],
                "mean_activation": float(mean[position]), "activation_std": float(std[position]),
                "incoming_gradient_norm": float(norms[layer][position]), "utility": float(utility[layer][position]),
            })


def replace_units(config, model, optimizer, book, utility, pending, step):
    """Continual backprop: replace the lowest-utility mature units of every hidden layer (in place)."""
    old_state = adam_state_by_name(model, optimizer)
    index_maps: dict = {}
    for layer in range(len(model.widths)):
        ages = torch.tensor([step - book.birth[layer][unit] for unit in book.ids[layer]])
        mature = torch.nonzero(ages > config.maturity_threshold).flatten()
        # Fractional replacements accumulate until a whole unit is due (Dohare et al.).
        pending[layer] += config.replacement_rate * mature.numel()
        n_replace = min(int(pending[layer]), mature.numel())
        if n_replace:
            pending[layer] -= n_replace
            chosen = lowest_units(utility[layer], n_replace, candidates=mature)
            index_maps = merge_index_maps(index_maps, reinitialize_units(model, layer, chosen,
                                                                         generator=book.generator))
            book.replace(layer, chosen.tolist(), step)
            utility[layer][chosen] = 0.0
    if index_maps and config.optimizer == "adam":
        transplant_adam_state(old_state, model, optimizer, index_maps, mode="keep")


