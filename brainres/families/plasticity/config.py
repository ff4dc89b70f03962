"""What determines a plasticity run except its seed: the ``[model.plasticity]`` table."""

from __future__ import annotations

import dataclasses

from brainres.families.plasticity.network import ACTIVATIONS
from brainres.families.plasticity.structure import (
    INSERTIONS,
    OPTIMIZER_STATES,
    REMOVALS,
)
from brainres.settings import (
    Boolean,
    Choice,
    Integer,
    Real,
    Sequence,
    Settings,
    SettingsError,
    Text,
    setting,
)

TRUNKS = ("mlp", "conv")
SCHEDULES = ("none", "grow", "prune")
OPTIMIZERS = ("adam", "sgd")
TASK_SEQUENCES = ("none", "permuted", "class-incremental")

_POSITIVE = Integer(low=1)
_COUNT = Integer(low=0)
_FRACTION = Real(low=0, high=1, high_open=True)


@dataclasses.dataclass(frozen=True)
class PlasticityConfig(Settings):
    """A trunk, the schedule that grows or prunes it, continual backprop, the task (sequence) and the training.

    Structural events happen **before the gradient of** training steps
    ``first_change_step + k * change_interval`` (steps count from 1). With a
    ``task_sequence``, the task switches every ``task_switch_every`` steps
    (before the gradient of steps ``k * task_switch_every + 1``); the last of
    the ``n_tasks`` tasks lasts until training ends.
    """

    trunk: str = setting("mlp", Choice(*TRUNKS), "mlp (fully connected) or conv (channels are units)")
    widths: tuple = setting((32, 32), Sequence(_POSITIVE), "initial units (neurons or channels) per hidden layer")
    activation: str = setting("gelu", Choice(*ACTIVATIONS), "gelu keeps zero-incoming insertions able to learn")
    kernel_size: int = setting(3, _POSITIVE, "convolution kernel side (conv trunk; odd)")
    schedule: str = setting("grow", Choice(*SCHEDULES), "structural changes during training: none, grow or prune")
    change_layers: tuple = setting((0,), Sequence(_COUNT, unique=True, non_empty=False),
                                   "hidden layers the schedule changes")
    n_changes: int = setting(1, _COUNT, "number of change events")
    units_per_change: int = setting(8, _COUNT, "units inserted into (removed from) each changed layer per event")
    first_change_step: int = setting(100, _POSITIVE, "step before whose gradient the first event happens")
    change_interval: int = setting(50, _POSITIVE, "steps between events")
    insertion: str = setting("random", Choice(*INSERTIONS), "initialisation of new units: random, zero, split, gradmax")
    split_noise: float = setting(0.1, Real(low=0), "symmetry-breaking noise of Net2Net splits")
    removal: str = setting("magnitude", Choice(*REMOVALS), "units pruning removes: lowest magnitude or utility")
    optimizer_state: str = setting("keep", Choice(*OPTIMIZER_STATES), "Adam moments across a change: keep or reset")
    replacement_rate: float = setting(0.0, _FRACTION, "continual backprop: mature units replaced per step (0 = off)")
    maturity_threshold: int = setting(100, _POSITIVE, "steps a unit must live before it can be replaced")
    utility_decay: float = setting(0.99, _FRACTION, "decay of the running contribution utility")
    task: str = setting("digits", Text(), "stimulus-set id (brainres.load_stimuli; needs 'label')")
    held_out_fraction: float = setting(0.25, Real(low=0, high=1, low_open=True, high_open=True),
                                       "fraction of the stimuli held out (the same split for every seed)")
    split_seed: int = setting(0, _COUNT, "seeds the train/held-out split")
    task_sequence: str = setting("none", Choice(*TASK_SEQUENCES),
                                 "continual learning: none, permuted (pixels) or class-incremental tasks")
    n_tasks: int = setting(1, _POSITIVE, "tasks in the sequence (task_sequence other than none)")
    task_switch_every: int = setting(100, _POSITIVE, "steps per task (task_sequence other than none)")
    sequence_seed: int = setting(0, _COUNT, "seeds the tasks' pixel permutations (the same for every seed)")
    epochs: int = setting(20, _POSITIVE, "training length in passes over the training split")
    batch_size: int = setting(64, _POSITIVE, "stimuli per step")
    learning_rate: float = setting(3e-3, Real(low=0, low_open=True), "learning rate")
    optimizer: str = setting("adam", Choice(*OPTIMIZERS), "adam or sgd")
    ratio_window: int = setting(50, _POSITIVE, "steps after each insertion for which the gradient ratio is recorded")
    eval_every: int = setting(10, _POSITIVE, "held-out accuracy every this many steps (and at the end)")
    track_every: int = setting(10, _POSITIVE, "per-unit statistics every this many steps (and at the end)")
    retrain: bool = setting(True, Boolean(), "also train the final architecture from scratch (same seed and steps)")

    def check_together(self) -> None:
        problems = []
        bad = [layer for layer in self.change_layers if layer >= len(self.widths)]
        if bad:
            problems.append(f"change_layers: expected distinct hidden-layer indices in 0..{len(self.widths) - 1}, "
                            f"got {list(self.change_layers)}")
        if self.trunk == "conv" and self.kernel_size % 2 == 0:
            problems.append(f"kernel_size: the conv trunk needs an odd kernel side, got {self.kernel_size}")
        if self.schedule != "none" and (self.n_changes < 1 or self.units_per_change < 1):
            problems.append(f"schedule {self.schedule!r} needs n_changes >= 1 and units_per_change >= 1, "
                            f"got {self.n_changes} and {self.units_per_change}")
        if self.schedule == "prune" and not bad:
            for layer in self.change_layers:
                left = self.widths[layer] - self.n_changes * self.units_per_change
                if left < 1:
                    problems.append(f"widths: pruning {self.n_changes} x {self.units_per_change} units from hidden "
                                    f"layer {layer} (width {self.widths[layer]}) leaves {left}; widths must stay "
                                    "positive")
        if self.insertion == "gradmax" and self.activation == "relu" and self.schedule == "grow":
            problems.append("insertion: 'gradmax' needs an activation with f'(0) != 0 (gelu or tanh), got relu")
        if self.task_sequence == "none" and self.n_tasks != 1:
            problems.append(f"n_tasks: {self.n_tasks} tasks need a task_sequence (permuted or class-incremental)")
        if self.task_sequence != "none" and self.n_tasks < 2:
            problems.append(f"n_tasks: task_sequence {self.task_sequence!r} needs n_tasks >= 2, got {self.n_tasks}")
        if problems:
            raise SettingsError(problems)

    def change_steps(self) -> tuple[int, ...]:
        """Training steps (from 1) before whose gradient a change event happens."""
        if self.schedule == "none":
            return ()
        return tuple(self.first_change_step + k * self.change_interval for k in range(self.n_changes))

    def final_widths(self) -> tuple[int, ...]:
        """Widths after the whole schedule."""
        delta = {"none": 0, "grow": 1, "prune": -1}[self.schedule] * self.n_changes * self.units_per_change
        return tuple(w + delta if i in self.change_layers else w for i, w in enumerate(self.widths))

    def task_at(self, step: int) -> int:
        """The task (from 0) trained at ``step`` (from 1); always 0 without a task sequence."""
        if self.task_sequence == "none":
            return 0
        return min((step - 1) // self.task_switch_every, self.n_tasks - 1)

    def pressures(self) -> dict:
        """The resource knobs, for the export's ``pressures`` attribute."""
        return {
            "trunk": self.trunk,
            "initial_widths": list(self.widths),
            "final_widths": list(self.final_widths()),
            "schedule": self.schedule,
            "change_layers": list(self.change_layers),
            "n_changes": self.n_changes,
            "units_per_change": self.units_per_change,
            "insertion": self.insertion,
            "removal": self.removal,
            "optimizer_state": self.optimizer_state,
            "replacement_rate": self.replacement_rate,
        }


def _widths(widths) -> str:
    return " x ".join(str(w) for w in widths)


def describe(config: PlasticityConfig) -> str:
    """Methods text for one plasticity configuration, from its recorded settings."""
    unit = "channels" if config.trunk == "conv" else "units"
    trunk = (f"a convolutional trunk ({config.kernel_size}x{config.kernel_size} kernels, 2x2 max-pooling between "
             "layers, global average pooling)" if config.trunk == "conv" else "a fully connected trunk")
    text = (f"{trunk} with hidden layers of {_widths(config.widths)} {unit} ({config.activation}) and a linear readout")
    steps = ", ".join(str(s) for s in config.change_steps())
    layers = ", ".join(str(layer) for layer in config.change_layers)
    if config.schedule == "grow":
        text += (f", growing by {config.units_per_change} {unit} ({config.insertion} initialisation) in hidden "
                 f"layer(s) {layers} before steps {steps} to {_widths(config.final_widths())}")
    elif config.schedule == "prune":
        text += (f", pruned by {config.units_per_change} {unit} ({config.removal} criterion) in hidden layer(s) "
                 f"{layers} before steps {steps} to {_widths(config.final_widths())}")
    if config.schedule != "none":
        text += f" (Adam state across a change: {config.optimizer_state})"
    if config.replacement_rate > 0:
        text += (f", with continual backprop replacing a fraction {config.replacement_rate:g} of the units older than "
                 f"{config.maturity_threshold} steps per step (utility decay {config.utility_decay:g})")
    if config.task_sequence == "permuted":
        data = (f"a sequence of {config.n_tasks} pixel-permuted versions of {config.task} (task 1 unpermuted; "
                f"permutation seed {config.sequence_seed}), switching every {config.task_switch_every} steps")
    elif config.task_sequence == "class-incremental":
        data = (f"a sequence of {config.n_tasks} class-incremental tasks of {config.task} (disjoint class groups in "
                f"class order, one shared readout), switching every {config.task_switch_every} steps")
    else:
        data = config.task
    return (f"{text}; trained on {data} ({1 - config.held_out_fraction:.0%} of the stimuli; "
            f"{config.held_out_fraction:.0%} held out with split seed {config.split_seed}) for {config.epochs} epochs "
            f"({config.optimizer}, learning rate {config.learning_rate:g}, batch size {config.batch_size}), held-out "
            f"accuracy every {config.eval_every} steps")
