"""Comparison plug-ins, installed as ``brainres.comparisons``.

One line per comparison: ``"comparison-id": "module:COMPARISON"``; a plug-in
module is imported only when its comparison is used. Each module defines a
:class:`brainres.compare.Comparison` whose ``run(model_measures, data,
**options)`` returns a :class:`brainres.compare.ComparisonResult`.
"""

INDEX = {
    "time-vs-rt": "time_vs_rt:COMPARISON",
    "occlusion-recurrence": "occlusion_recurrence:COMPARISON",
    "speed-accuracy": "speed_accuracy:COMPARISON",
    "latents-vs-neural": "latents_vs_neural:COMPARISON",
    "seed-sweep": "seed_sweep:COMPARISON",
    "elm-budget": "elm_budget:COMPARISON",
    "insertion-gradient": "plasticity_insertion:COMPARISON",
    "grow-prune": "plasticity_schedules:COMPARISON",
    "grow-prune-continual": "plasticity_continual:COMPARISON",
    "seqpar-widths": "seqpar_widths:COMPARISON",
    "seqpar-switch": "seqpar_switch:COMPARISON",
    "model-comparison": "model_comparison:COMPARISON",
    "competence-alignment": "competence_alignment:COMPARISON",
}
