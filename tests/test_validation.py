"""The shared checks behind every count-like and every positive real argument of the helpers."""
import numpy as np
import pytest

from utils.validation import check_int, check_positive


def test_accepts_python_and_numpy_integers():
    assert check_int("n", 3) == 3
    value = check_int("n", np.int64(4))
    assert value == 4 and type(value) is int
    assert check_int("num_classes", 2, 2) == 2
    assert check_int("limit", None, none_ok=True) is None


@pytest.mark.parametrize("value", [0, -1, 2.0, "3", True, np.bool_(True), None])
def test_rejects_what_is_not_a_count(value):
    with pytest.raises(ValueError, match=r"`n` must be an int >= 1, got"):
        check_int("n", value)


def test_message_carries_the_bound_none_and_note():
    with pytest.raises(ValueError, match=r"`num_classes` must be an int >= 2 \(background\), got 1"):
        check_int("num_classes", 1, 2, note=" (background)")
    with pytest.raises(ValueError, match=r"`limit` must be an int >= 1 or None, got 0"):
        check_int("limit", 0, none_ok=True)


def test_helpers_use_it_so_a_bool_count_is_refused():
    from utils.datasets import SceneSegmentationDataset
    from utils.scenes import make_scenes

    with pytest.raises(ValueError, match="`n` must be an int >= 1, got True"):
        SceneSegmentationDataset(True, 32)
    with pytest.raises(ValueError, match="`n` must be an int >= 1, got True"):
        make_scenes(True, 32)


def test_check_positive_accepts_positive_reals_and_refuses_the_rest():
    assert check_positive("lr", 3e-3) == 3e-3 and type(check_positive("lr", np.float32(2))) is float
    assert check_positive("grad_clip", None, none_ok=True) is None
    for value in (0, -1.0, float("nan"), True, "1", None):
        with pytest.raises(ValueError, match=r"`lr` must be positive, got"):
            check_positive("lr", value)
    with pytest.raises(ValueError, match=r"`grad_clip` must be positive or None, got 0.0"):
        check_positive("grad_clip", 0.0, none_ok=True)


def test_the_module_examples_hold():
    import doctest

    import utils.validation

    result = doctest.testmod(utils.validation)
    assert result.attempted >= 2 and result.failed == 0
