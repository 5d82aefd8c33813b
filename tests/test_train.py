"""Tests of utils.train on tiny generated data: history, best weights, checkpoint, early stopping, seeding."""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from utils.models import UNet
from utils.train import evaluate, fit, logits_of, predict

NUM_CLASSES = 3


def _data(seed, n=16, size=16):
    """Images whose red channel says the class of each pixel: easy enough to learn in a few steps."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, NUM_CLASSES, (n, size // 4, size // 4), generator=g)
    masks = masks.repeat_interleave(4, 1).repeat_interleave(4, 2)
    images = torch.rand(n, 3, size, size, generator=g) * 0.3
    images[:, 0] += masks / NUM_CLASSES
    return TensorDataset(images, masks)


def _loaders(bs=8):
    return DataLoader(_data(0), bs, shuffle=True), DataLoader(_data(1), bs)


def _model():
    torch.manual_seed(0)
    return UNet(3, NUM_CLASSES, base_width=4, depth=2)


class DictOutput(nn.Module):
    """Wraps a model the way torchvision's segmentation models answer: {"out": logits}."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return {"out": self.model(x), "aux": None}


def _fit(model, epochs=3, **kwargs):
    train, val = _loaders()
    opt = torch.optim.Adam(model.parameters(), lr=kwargs.pop("lr", 1e-2))
    return fit(model, train, val, nn.CrossEntropyLoss(ignore_index=255), opt, epochs, NUM_CLASSES,
               device="cpu", progress=False, **kwargs)


def test_history_rows_and_learning():
    history = _fit(_model(), epochs=4, seed=0)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for row in history:
        assert set(row) >= {"epoch", "train_loss", "val_loss", "val_miou", "val_pixel_accuracy", "lr", "time_s"}
        assert math.isfinite(row["train_loss"]) and 0 <= row["val_miou"] <= 1 and row["time_s"] > 0
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_model_ends_with_the_best_weights():
    model = _model()
    history = _fit(model, epochs=4, seed=0)
    _, val = _loaders()
    score = evaluate(model, val, NUM_CLASSES, device="cpu")["miou"]
    assert score == pytest.approx(max(row["val_miou"] for row in history))


def test_seed_makes_runs_repeatable():
    a = _fit(_model(), epochs=2, seed=3)
    b = _fit(_model(), epochs=2, seed=3)
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]


def test_checkpoint_holds_the_best_state(tmp_path):
    path = tmp_path / "sub" / "best.pt"
    model = _model()
    _fit(model, epochs=2, seed=0, checkpoint_path=path)
    state = torch.load(path, weights_only=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(state[key], value)


def test_early_stopping_stops_when_nothing_improves():
    # lr = 0 and no batch norm (whose running statistics would move): the weights never change, so the
    # monitored value never improves after epoch 1.
    torch.manual_seed(0)
    history = _fit(UNet(3, NUM_CLASSES, 4, 2, norm="none"), epochs=10, lr=0.0, early_stopping=2, monitor="val_loss")
    assert len(history) == 3


def test_per_batch_scheduler_is_stepped_every_batch():
    model = _model()
    train, val = _loaders()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2 * len(train))
    fit(model, train, val, nn.CrossEntropyLoss(), opt, 2, NUM_CLASSES, device="cpu", scheduler=sched,
        progress=False)
    assert sched.last_epoch == 2 * len(train)


def test_per_epoch_scheduler_is_stepped_every_epoch():
    model = _model()
    train, val = _loaders()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = fit(model, train, val, nn.CrossEntropyLoss(), opt, 3, NUM_CLASSES, device="cpu", scheduler=sched,
                  progress=False)
    assert [row["lr"] for row in history] == pytest.approx([0.1, 0.05, 0.025])


def test_dict_output_models_work_everywhere():
    model = DictOutput(_model())
    history = _fit(model, epochs=1, seed=0)
    assert len(history) == 1
    images = _data(2, n=2)[:][0]
    assert predict(model, images, device="cpu").shape == (2, 16, 16)


def test_predict_single_image_and_mode_restored():
    model = _model().train()
    labels = predict(model, torch.rand(3, 16, 16), device="cpu")
    assert labels.shape == (1, 16, 16) and labels.dtype == torch.int64
    assert model.training


def test_evaluate_reports_loss_when_given():
    _, val = _loaders()
    out = evaluate(_model(), val, NUM_CLASSES, device="cpu", loss_fn=nn.CrossEntropyLoss())
    assert out["loss"] > 0 and out["iou"].shape == (NUM_CLASSES,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_on_the_gpu_with_amp():
    train, val = _loaders()
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = fit(model, train, val, nn.CrossEntropyLoss(), opt, 1, NUM_CLASSES, device="cuda", amp=True,
                  progress=False)
    assert math.isfinite(history[0]["train_loss"])


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "`epochs` must be an int >= 1, got 0"),
    ({"early_stopping": 0}, "`early_stopping` must be an int >= 1 or None \\(patience in epochs\\), got 0"),
    ({"monitor": "val_iou"}, "`monitor` must be one of"),
])
def test_fit_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _fit(_model(), **kwargs)


def test_logits_of_error():
    with pytest.raises(ValueError, match=r"a dict with keys \['aux'\]"):
        logits_of({"aux": torch.zeros(1)})


def test_predict_error():
    with pytest.raises(ValueError, match=r"`images` must be a \(B, C, H, W\) or \(C, H, W\) tensor, got \(16, 16\)"):
        predict(_model(), torch.rand(16, 16), device="cpu")


def test_plateau_scheduler_gets_the_monitored_value():
    seen = []

    class Recording(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics, *args, **kwargs):
            seen.append(metrics)
            return super().step(metrics, *args, **kwargs)

    model = _model()
    train, val = _loaders()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = fit(model, train, val, nn.CrossEntropyLoss(), opt, 3, NUM_CLASSES, device="cpu",
                  scheduler=Recording(opt, mode="max"), monitor="val_miou", progress=False)
    assert seen == [row["val_miou"] for row in history]


def test_evaluate_and_predict_default_to_the_model_device():
    model = _model()  # on the CPU
    _, val = _loaders()
    assert evaluate(model, val, NUM_CLASSES)["iou"].shape == (NUM_CLASSES,)
    assert predict(model, torch.rand(1, 3, 16, 16)).device.type == "cpu"


class _RecordingLoss(torch.nn.CrossEntropyLoss):
    """A weighted cross-entropy that records every device it is moved to."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.moved_to = []

    def to(self, *args, **kwargs):
        self.moved_to.append(torch.device(args[0]) if args else kwargs.get("device"))
        return super().to(*args, **kwargs)


def test_fit_and_evaluate_move_a_module_loss_with_the_model():
    """A class-weighted loss made on the CPU must follow the model to its device (CUDA on Colab)."""
    from torch.utils.data import DataLoader, TensorDataset

    images = torch.rand(4, 3, 8, 8)
    masks = torch.randint(0, 2, (4, 8, 8))
    loader = DataLoader(TensorDataset(images, masks), batch_size=2)
    model = torch.nn.Conv2d(3, 2, 1)
    loss = _RecordingLoss(weight=torch.tensor([1.0, 3.0]))
    fit(model, loader, loader, loss, torch.optim.SGD(model.parameters(), lr=0.1), 1, 2, device="cpu", progress=False)
    assert torch.device("cpu") in loss.moved_to
    loss.moved_to.clear()
    evaluate(model, loader, 2, device="cpu", loss_fn=loss)
    assert loss.moved_to == [torch.device("cpu")] and loss.weight.device.type == "cpu"
    meta = _RecordingLoss(weight=torch.tensor([1.0, 3.0]))
    from utils.train import _loss_to

    assert _loss_to(meta, torch.device("meta")).weight.device.type == "meta"   # where the buffers end up
    plain = lambda logits, target: logits.sum()  # noqa: E731 - a plain function is left alone
    assert _loss_to(plain, torch.device("meta")) is plain
