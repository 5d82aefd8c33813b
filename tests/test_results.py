"""utils.results.record: returns its value, stores it only under the notebook runner."""
import json
import math

import numpy as np
import pytest

from utils.results import record


def test_record_returns_value_without_runner(monkeypatch):
    monkeypatch.delenv("COURSE_RESULTS", raising=False)
    assert record("x", 3) == 3


def test_record_writes_json(monkeypatch, tmp_path):
    path = tmp_path / "r.json"
    monkeypatch.setenv("COURSE_RESULTS", str(path))
    record("unet_val_miou", 0.912345)
    record("coins", 24)
    assert json.loads(path.read_text()) == {"unet_val_miou": 0.9123, "coins": 24}


@pytest.mark.parametrize("key, value, message", [
    ("has space", 1, "`key`"),
    ("x", math.nan, "finite"),
    ("x", [1, 2], "number or string"),
])
def test_record_bad_input(key, value, message):
    with pytest.raises(ValueError, match=message):
        record(key, value)


def test_mean_range_formats_seed_spreads():
    from utils.results import mean_range

    assert mean_range([0.5, 0.7, 0.6]) == "0.600 (0.500-0.700)"
    assert mean_range(np.array([0.4321])) == "0.432 (one seed)"
    with pytest.raises(ValueError, match="`values` is empty"):
        mean_range([])
