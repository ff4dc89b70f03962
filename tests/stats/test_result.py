import math

import numpy as np
import pandas as pd
import pytest

from brainres.data import read_netcdf, write_netcdf
from brainres.stats import StatResult, results_table, results_to_dataset


def _results():
    return [
        StatResult("spearman", 0.4, 0.3, 0.5, 0.95, "bca", "bootstrap over stimulus", n=100, n_resamples=999,
                   seed=3, resampled=("stimulus",), extra={"ceiling": 0.8}, distribution=np.linspace(0, 1, 5)),
        StatResult("pearson", -0.1, p_value=0.2, n=50, extra={"note": "plain"}),
    ]


def test_row_has_standard_columns_then_extra():
    row = _results()[0].to_row()
    assert list(row)[:12] == ["statistic", "estimate", "ci_low", "ci_high", "ci_level", "interval", "method",
                             "p_value", "n", "n_resamples", "seed", "resampled"]
    assert row["resampled"] == "stimulus" and row["ceiling"] == 0.8


def test_table_is_one_row_per_result_with_union_of_extras():
    table = results_table(_results())
    assert isinstance(table, pd.DataFrame) and len(table) == 2
    assert math.isnan(table.loc[1, "ceiling"]) and table.loc[0, "note"] != "plain"


def test_extra_may_not_shadow_a_standard_column():
    with pytest.raises(ValueError, match="clash"):
        StatResult("x", 1.0, extra={"estimate": 2.0}).to_row()


def test_dataset_round_trips_through_netcdf(tmp_path):
    ds = results_to_dataset(_results())
    assert ds.sizes == {"result": 2, "resample": 5}
    path = write_netcdf(ds, tmp_path / "results.nc")
    back = read_netcdf(path)
    np.testing.assert_allclose(back["estimate"].values, [0.4, -0.1])
    assert list(back["statistic"].values.astype(str)) == ["spearman", "pearson"]
    assert back["seed"].values.tolist() == [3, -1]
    np.testing.assert_allclose(back["distribution"].values[0], np.linspace(0, 1, 5))
    assert np.isnan(back["distribution"].values[1]).all()


def test_single_result_to_frame_and_xarray():
    result = _results()[1]
    assert result.to_frame().shape[0] == 1
    assert result.to_xarray().sizes["result"] == 1
