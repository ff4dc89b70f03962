"""The methods text of a run's report is written from each model's recorded training configuration."""

import json

from brainres.pipeline.report import _training_sentence
from brainres.train import TrainConfig


def _recorded(**changes):
    # what a training folder's config.json holds under "training" (the configuration actually used)
    return json.loads(json.dumps(TrainConfig(**changes).to_dict()))


def test_a_model_trained_without_occlusion_is_described_as_such():
    text = _training_sentence(_recorded(occlusion_levels=(0.0,), epochs=3), "geirhos2021-cue-conflict", True)
    assert "no occlusion augmentation" in text and "occlusion augmentation at levels" not in text
    assert "for 3 epochs" in text


def test_recorded_occlusion_levels_and_settings_are_reported_not_defaults():
    recorded = _recorded(occlusion_levels=(0.0, 0.25), epochs=12, batch_size=32, learning_rate=0.004)
    text = _training_sentence(recorded, "geirhos2021-cue-conflict", False)
    assert "occlusion augmentation at levels 0, 0.25" in text and "0.5" not in text
    assert "12 epochs" in text and "batch size 32" in text and "learning rate 0.004" in text


def test_the_class_default_is_no_augmentation():
    # one default per setting: the API's, and so the CLI's and the pipelines' (they take it from TrainConfig)
    assert tuple(TrainConfig().occlusion_levels) == (0.0,)


def test_the_report_shows_each_estimand_and_a_warning_next_to_the_estimate():
    from brainres.compare import ComparisonResult
    from brainres.report.html import render_report
    from brainres.stats import StatResult

    result = StatResult(statistic="latent_spearman", estimate=-0.45, ci_low=-0.79, ci_high=-0.15, ci_level=0.95,
                        interval="percentile", n=160,
                        extra={"label": "noise-corrected correlation", "headline": True, "ceiling": 0.8,
                               "estimand": "the correlation of the noise-free stimulus effects",
                               "warning": "model at chance: accuracy of seed(s) 2 is not above chance"})
    page = render_report(title="t", comparisons=[ComparisonResult(comparison="time-vs-rt", title="t",
                                                                  results=[result], notes=["a note"])],
                         methods=["m"], provenance={})
    assert "Estimand: the correlation of the noise-free stimulus effects." in page
    summary = page[page.index("class='summary'"):]
    assert "model at chance: accuracy of seed(s) 2" in summary[:summary.index("</table>")]
