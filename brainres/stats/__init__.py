"""Statistics engine: resampling, correlations, reliability, mixed models, RSA, encoding.

Pure numerics over numpy arrays and xarray objects; every random draw comes
from an explicit ``seed`` (an int or a ``numpy.random.Generator``). Every
function returns :class:`StatResult` objects (or tidy tables) that turn into
table rows and xarray datasets. See ``docs/statistics.md``.
"""

from brainres.stats.correlate import (
    bootstrap_correlation,
    correlate,
    correlate_over_seeds,
    partial_correlation,
    permutation_correlation,
)
from brainres.stats.encoding import ridge_encoding
from brainres.stats.latent import latent_correlation
from brainres.stats.mixed import mixed_model_results, rt_mixed_model
from brainres.stats.multiple import adjust_p_values, adjust_results
from brainres.stats.paired import bootstrap_correlation_difference
from brainres.stats.reliability import (
    correlation_ceiling,
    disattenuated_correlation,
    split_half_distribution,
    split_half_reliability,
    spearman_brown,
)
from brainres.stats.resample import crossed_bootstrap, permutation_test
from brainres.stats.result import StatResult, results_table, results_to_dataset
from brainres.stats.seeds import seed_difference, seed_summary
from brainres.stats.sparse import SparseHuman, human_cells
from brainres.stats.rsa import (
    bootstrap_rdm_comparison,
    compare_over_steps,
    compare_rdms,
    rdm_from_responses,
    rdm_noise_ceiling,
)

__all__ = [
    "StatResult",
    "SparseHuman",
    "adjust_p_values",
    "adjust_results",
    "bootstrap_correlation",
    "bootstrap_correlation_difference",
    "bootstrap_rdm_comparison",
    "compare_over_steps",
    "compare_rdms",
    "correlate",
    "correlate_over_seeds",
    "correlation_ceiling",
    "crossed_bootstrap",
    "disattenuated_correlation",
    "latent_correlation",
    "human_cells",
    "mixed_model_results",
    "partial_correlation",
    "permutation_correlation",
    "permutation_test",
    "rdm_from_responses",
    "rdm_noise_ceiling",
    "results_table",
    "results_to_dataset",
    "ridge_encoding",
    "rt_mixed_model",
    "seed_difference",
    "seed_summary",
    "spearman_brown",
    "split_half_distribution",
    "split_half_reliability",
]
