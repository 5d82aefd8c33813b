"""utils.models.segformer: the course's SegFormer against transformers' SegformerForSemanticSegmentation (same
weights, block by block and end to end), the key/value reduction, sizes, a few training steps, argument errors."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from utils.models.segformer import (
    TINY_NUM_PARAMETERS,
    AllMLPDecoder,
    EfficientSelfAttention,
    SegFormer,
    SegFormerConfig,
    hf_config,
    hf_key_mapping,
    load_hf_segformer_weights,
    segformer_b0_config,
    segformer_tiny,
    segformer_tiny_config,
)

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-5

# Uneven sizes everywhere (two blocks in stages 1 and 4, 3 heads of 16 channels, mlp_ratio 2) so that a mix-up
# of stages, heads or blocks shows.
TEST_CONFIG = SegFormerConfig(hidden_sizes=(16, 32, 48, 64), depths=(2, 1, 1, 2), num_attention_heads=(1, 2, 3, 4),
                              sr_ratios=(8, 4, 2, 1), patch_sizes=(7, 3, 3, 3), strides=(4, 2, 2, 2),
                              mlp_ratios=(4, 4, 2, 2), decoder_hidden_size=32)
NUM_CLASSES = 5


def _randomise_(model: torch.nn.Module) -> None:
    """Move every weight and BatchNorm statistic away from its initial value, so no copy error can hide."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn_like(b))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand_like(b))


def _pair(config: SegFormerConfig, num_classes: int, seed: int = 0):
    """A random transformers model and the course's model with its weights, both in eval mode."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    hf = transformers.SegformerForSemanticSegmentation(hf_config(config, num_classes)).eval()
    _randomise_(hf)
    ours = load_hf_segformer_weights(SegFormer(num_classes, config), hf).eval()
    return hf, ours


def _hf_stage(hf, i: int):
    """(patch embedding, blocks, final LayerNorm) of stage ``i``, in transformers' current or earlier layout."""
    if hasattr(hf.segformer, "stages"):
        stage = hf.segformer.stages[i]
        return stage.patch_embeddings, stage.blocks, stage.layer_norm
    encoder = hf.segformer.encoder
    return encoder.patch_embeddings[i], encoder.block[i], encoder.layer_norm[i]


def _first(output):
    return output[0] if isinstance(output, tuple) else output


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: these small tensors gain nothing from two, and a busy machine slows threaded runs a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair():
    return _pair(TEST_CONFIG, NUM_CLASSES)


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


def _stage_input(ours, images, i):
    """The input of stage ``i`` (image or previous feature map) as the course's model computes it."""
    return images if i == 0 else ours.encoder(images)[i - 1]


# ----------------------------------------------------------------------------------------------------------------
# the same computation as transformers


@pytest.mark.parametrize("stage", [0, 3])
def test_patch_embedding_matches_hf(pair, images, stage):
    hf, ours = pair
    x = _stage_input(ours, images, stage)
    with torch.no_grad():
        hf_tokens, hf_h, hf_w = _hf_stage(hf, stage)[0](x)
        tokens, h, w = ours.encoder.stages[stage].patch_embed(x)
    assert (h, w) == (hf_h, hf_w) == (64 // 4 // 2 ** stage,) * 2
    assert tokens.shape == (2, h * w, TEST_CONFIG.hidden_sizes[stage])
    torch.testing.assert_close(tokens, hf_tokens, atol=ATOL, rtol=0)


@pytest.mark.parametrize("stage", [0, 1, 2, 3])   # sr_ratio 8, 4, 2 and 1 (plain attention)
def test_efficient_self_attention_matches_hf(pair, images, stage):
    hf, ours = pair
    with torch.no_grad():
        tokens, h, w = ours.encoder.stages[stage].patch_embed(_stage_input(ours, images, stage))
        hf_block, block = _hf_stage(hf, stage)[1][0], ours.encoder.stages[stage].blocks[0]
        expected = _first(hf_block.attention(tokens, h, w))
        got = block.attn(tokens, h, w)
    assert (block.attn.sr is None) == (TEST_CONFIG.sr_ratios[stage] == 1)
    assert got.shape == tokens.shape
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_mix_ffn_matches_hf(pair, images):
    hf, ours = pair
    with torch.no_grad():
        tokens, h, w = ours.encoder.stages[1].patch_embed(ours.encoder(images)[0])
        expected = _hf_stage(hf, 1)[1][0].mlp(tokens, h, w)
        got = ours.encoder.stages[1].blocks[0].ffn(tokens, h, w)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("stage, block", [(0, 0), (0, 1), (3, 1)])
def test_block_matches_hf(pair, images, stage, block):
    hf, ours = pair
    with torch.no_grad():
        tokens, h, w = ours.encoder.stages[stage].patch_embed(_stage_input(ours, images, stage))
        expected = _first(_hf_stage(hf, stage)[1][block](tokens, h, w))
        got = ours.encoder.stages[stage].blocks[block](tokens, h, w)
    assert not torch.allclose(got, tokens, atol=1e-2)   # the block does something
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_encoder_stages_match_hf(pair, images):
    hf, ours = pair
    with torch.no_grad():
        expected = hf.segformer(images, output_hidden_states=True).hidden_states
        got = ours.encoder(images)
    assert len(got) == len(expected) == 4
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape == (2, TEST_CONFIG.hidden_sizes[i], 16 // 2 ** i, 16 // 2 ** i)
        torch.testing.assert_close(g, e, atol=ATOL, rtol=0, msg=lambda m, i=i: f"stage {i + 1}: {m}")


@pytest.mark.parametrize("size", [(64, 64), (72, 56), (33, 47)])   # also sides that are not multiples of 32
def test_decoder_logits_match_hf(pair, size):
    hf, ours = pair
    torch.manual_seed(2)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = hf(x).logits
        quarter = ours(x, upsample=False)
        full = ours(x)
        decoded = ours.decoder(ours.encoder(x))
    assert quarter.shape == expected.shape == (2, NUM_CLASSES, -(-size[0] // 4), -(-size[1] // 4))
    torch.testing.assert_close(quarter, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(decoded, quarter, atol=0, rtol=0)
    assert full.shape == (2, NUM_CLASSES, *size)
    torch.testing.assert_close(full, F.interpolate(expected, size=size, mode="bilinear", align_corners=False),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("config_fn, num_classes", [(segformer_tiny_config, 4), (segformer_b0_config, 19)])
def test_course_configs_match_hf_end_to_end(config_fn, num_classes):
    hf, ours = _pair(config_fn(), num_classes, seed=3)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())
    torch.manual_seed(4)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = hf(x).logits
        got = ours(x, upsample=False)
    # B0's logits reach ~13 here (random weights), and its decoder fuses 1024 channels: float32 rounding then
    # differs by ~2e-5, so the tolerance scales with the logits' size (still ~1e-6 relative).
    torch.testing.assert_close(got, expected, atol=ATOL * max(1.0, expected.abs().max().item()), rtol=0)


def test_b0_config_is_the_published_mit_b0():
    config = segformer_b0_config()
    assert config == SegFormerConfig()
    assert config.to_dict() == {
        "hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "num_attention_heads": [1, 2, 5, 8],
        "sr_ratios": [8, 4, 2, 1], "patch_sizes": [7, 3, 3, 3], "strides": [4, 2, 2, 2], "mlp_ratios": [4, 4, 4, 4],
        "decoder_hidden_size": 256, "num_channels": 3, "classifier_dropout_prob": 0.1}
    # the paper's Table 1: SegFormer-B0 has 3.8 M parameters (ADE20K, 150 classes)
    assert round(sum(p.numel() for p in SegFormer(150, config).parameters()) / 1e6, 1) == 3.8


def test_hf_config_mirrors_the_fields():
    transformers = pytest.importorskip("transformers")
    cfg = hf_config(TEST_CONFIG, NUM_CLASSES)
    assert isinstance(cfg, transformers.SegformerConfig)
    for name in ("hidden_sizes", "depths", "num_attention_heads", "sr_ratios", "patch_sizes", "strides",
                 "mlp_ratios"):
        assert list(getattr(cfg, name)) == list(getattr(TEST_CONFIG, name)), name
    assert (cfg.num_encoder_blocks, cfg.decoder_hidden_size, cfg.num_labels) == (4, 32, NUM_CLASSES)
    assert cfg.drop_path_rate == 0 and cfg.hidden_dropout_prob == 0 and cfg.attention_probs_dropout_prob == 0


# ----------------------------------------------------------------------------------------------------------------
# the weight mapping


def test_every_weight_is_copied_by_name(pair):
    hf, ours = pair
    hf_state, mapping = hf.state_dict(), hf_key_mapping(ours)
    assert sorted(mapping.values()) == sorted(hf_state)            # one to one
    for key, value in ours.state_dict().items():
        assert torch.equal(value, hf_state[mapping[key]]), key
    assert (mapping["encoder.stages.2.blocks.0.attn.query.weight"]
            == "segformer.stages.2.blocks.0.attention.q_proj.weight")
    assert mapping["decoder.norm.running_var"] == "decode_head.batch_norm.running_var"


def test_earlier_transformers_names_load_too(pair, images):
    """Hub checkpoints and save_pretrained files keep transformers' earlier names (segformer.encoder.block...)."""
    hf, ours = pair
    current, legacy = hf_key_mapping(ours), hf_key_mapping(ours, legacy=True)
    assert legacy["encoder.stages.0.blocks.1.attn.sr.weight"] == "segformer.encoder.block.0.1.attention.self.sr.weight"
    hf_state = hf.state_dict()
    legacy_state = {legacy[key]: hf_state[current[key]] for key in current}
    fresh = load_hf_segformer_weights(SegFormer(NUM_CLASSES, TEST_CONFIG), legacy_state).eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(images), ours(images), atol=0, rtol=0)


def test_a_checkpoint_saved_by_transformers_loads(pair, images, tmp_path):
    """What save_pretrained writes (the file a Hub download gives) maps onto the course's model."""
    hf, ours = pair
    load_file = pytest.importorskip("safetensors.torch").load_file
    hf.save_pretrained(tmp_path)
    fresh = load_hf_segformer_weights(SegFormer(NUM_CLASSES, TEST_CONFIG), load_file(tmp_path / "model.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(images), ours(images), atol=0, rtol=0)


def test_earlier_names_agree_with_transformers_renaming(pair):
    """transformers' own table (earlier name -> current name) turns our earlier names into our current ones."""
    pytest.importorskip("transformers")
    try:
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    except ImportError:
        pytest.skip("this transformers has no checkpoint conversion table (it still uses the earlier names)")
    rules = [(w.source_patterns[0], w.target_patterns[0])
             for name in ("SegformerModel", "SegformerForSemanticSegmentation")
             for w in (get_checkpoint_conversion_mapping(name) or [])]
    if not rules:
        pytest.skip("this transformers has no SegFormer renaming (it still uses the earlier names)")
    _, ours = pair
    current, legacy = hf_key_mapping(ours), hf_key_mapping(ours, legacy=True)
    for key, old in legacy.items():
        new = old.removeprefix("segformer.")
        for source, target in rules:
            new = re.sub(source, target, new)
        assert ("segformer." + new if old.startswith("segformer.") else new) == current[key], key


def test_mapping_errors_name_the_weights(pair):
    transformers = pytest.importorskip("transformers")
    hf, _ = pair
    deeper = dataclasses.replace(TEST_CONFIG, depths=(2, 2, 1, 2))     # one block more in stage 2
    with pytest.raises(ValueError, match=r"missing in `hf_model`: .*segformer\.stages\.1\.blocks\.1\."):
        load_hf_segformer_weights(SegFormer(NUM_CLASSES, deeper), hf)
    shallower = dataclasses.replace(TEST_CONFIG, depths=(1, 1, 1, 2))
    with pytest.raises(ValueError, match=r"unexpected in `hf_model`.*segformer\.stages\.0\.blocks\.1\."):
        load_hf_segformer_weights(SegFormer(NUM_CLASSES, shallower), hf)
    with pytest.raises(ValueError, match=r"shapes differ.*decode_head\.classifier\.weight \(5, 32, 1, 1\)"):
        load_hf_segformer_weights(SegFormer(3, TEST_CONFIG), hf)
    classifier = transformers.SegformerForImageClassification(hf_config(TEST_CONFIG, NUM_CLASSES))
    with pytest.raises(ValueError, match=r"missing in `hf_model`: decode_head\."):
        load_hf_segformer_weights(SegFormer(NUM_CLASSES, TEST_CONFIG), classifier)
    with pytest.raises(ValueError, match="`hf_model` must be"):
        load_hf_segformer_weights(SegFormer(NUM_CLASSES, TEST_CONFIG), 42)
    with pytest.raises(ValueError, match="`model` must be a SegFormer"):
        load_hf_segformer_weights(torch.nn.Linear(2, 2), hf)


def test_nothing_is_copied_when_the_mapping_fails(pair):
    hf, _ = pair
    torch.manual_seed(5)
    model = SegFormer(3, TEST_CONFIG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError):
        load_hf_segformer_weights(model, hf)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------------------------------------------
# the key/value reduction, sizes and shapes


@pytest.mark.parametrize("sr_ratio, heads", [(8, 1), (4, 2), (2, 4), (1, 2)])
def test_spatial_reduction_shortens_keys_and_values(sr_ratio, heads):
    torch.manual_seed(0)
    attention = EfficientSelfAttention(32, num_heads=heads, sr_ratio=sr_ratio)
    seen = {}

    def record(module, inputs, output):      # returns None: the output is left as it is
        seen["key_input"] = inputs[0].shape

    attention.key.register_forward_hook(record)
    h, w = 16, 24
    x = torch.randn(2, h * w, 32)
    out, weights = attention(x, h, w, return_attention=True)
    m = (h // sr_ratio) * (w // sr_ratio)
    assert out.shape == x.shape
    assert seen["key_input"] == (2, m, 32)                     # keys and values from M tokens ...
    assert weights.shape == (2, heads, h * w, m)              # ... so the attention matrix is N x M
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, heads, h * w))
    assert (attention.sr is None) == (sr_ratio == 1)


def test_tiny_model_parameter_count():
    for num_classes in (2, 4, 21):
        n = sum(p.numel() for p in segformer_tiny(num_classes).parameters())
        assert n == TINY_NUM_PARAMETERS["base"] + TINY_NUM_PARAMETERS["per_class"] * num_classes
    assert sum(p.numel() for p in segformer_tiny(4).parameters()) == 456_036   # the figure the docstrings give


@pytest.mark.parametrize("side", [64, 96, 128])
def test_output_shapes(side):
    torch.manual_seed(0)
    model = segformer_tiny(4).eval()
    x = torch.rand(2, 3, side, side)
    with torch.no_grad():
        features = model.encoder(x)
        assert model(x).shape == (2, 4, side, side)
        assert model(x, upsample=False).shape == (2, 4, side // 4, side // 4)
    assert [f.shape for f in features] == [(2, c, side // s, side // s) for c, s in zip((16, 32, 64, 128),
                                                                                        (4, 8, 16, 32))]
    assert model.encoder.feature_sizes(side, side) == [(side // s,) * 2 for s in (4, 8, 16, 32)]


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = segformer_tiny(2)
    images = torch.rand(4, 3, 64, 64) * 0.2
    masks = torch.zeros(4, 64, 64, dtype=torch.long)
    for i, (top, left) in enumerate([(8, 8), (30, 20), (16, 36), (40, 40)]):   # a bright square per image
        images[i, :, top:top + 20, left:left + 20] += 0.7
        masks[i, top:top + 20, left:left + 20] = 1
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(15):
        loss = F.cross_entropy(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0], losses
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------------
# argument errors


@pytest.mark.parametrize("changes, pattern", [
    ({"sr_ratios": (8, 4, 2)}, r"`sr_ratios` must have one entry per stage: 4"),
    ({"depths": (2, 2, 2, 2, 2)}, r"`depths` must have one entry per stage"),
    ({"hidden_sizes": (16, 32, 64, 130)}, r"`hidden_sizes\[3\]` = 130 must be divisible by `num_attention_heads\[3\]`"),
    ({"num_attention_heads": (1, 2, 0, 4)}, r"`num_attention_heads\[2\]` must be an int >= 1, got 0"),
    ({"depths": (2, 2.5, 2, 2)}, r"`depths\[1\]` must be an int >= 1"),
    ({"strides": "4222"}, r"`strides` must be a list or tuple"),
    ({"mlp_ratios": (4, 4, -1, 4)}, r"`mlp_ratios\[2\]` must be an int >= 1, got -1"),
    ({"mlp_ratios": (4, 4, 2.5, 4)}, r"`mlp_ratios\[2\]` must be an int >= 1, got 2.5"),
    ({"decoder_hidden_size": 0}, r"`decoder_hidden_size` must be an int >= 1"),
    ({"num_channels": True}, r"`num_channels` must be an int >= 1"),
    ({"classifier_dropout_prob": 1.0}, r"`classifier_dropout_prob` must be a number in \[0, 1\)"),
    ({"hidden_sizes": ()}, r"`hidden_sizes` must give at least one stage"),
])
def test_config_errors_name_the_argument(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        dataclasses.replace(segformer_tiny_config(), **changes)


def test_config_accepts_lists_and_stores_tuples():
    config = SegFormerConfig(hidden_sizes=[8, 16], depths=[1, 1], num_attention_heads=[1, 2], sr_ratios=[2, 1],
                             patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[4, 3], decoder_hidden_size=8)
    assert config.hidden_sizes == (8, 16) and config.num_stages == 2
    model = SegFormer(3, config)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    assert model.encoder.stages[1].blocks[0].ffn.fc1.out_features == 48


def test_model_argument_errors():
    model = segformer_tiny(4)
    with pytest.raises(ValueError, match=r"`num_classes` must be an int >= 1, got 0"):
        segformer_tiny(0)
    with pytest.raises(ValueError, match="`config` must be a SegFormerConfig"):
        SegFormer(4, {"hidden_sizes": (16, 32, 64, 128)})
    with pytest.raises(ValueError, match=r"`images` must be a \(B, 3, H, W\) tensor, got \(3, 64, 64\)"):
        model(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match=r"`images` must be a \(B, 3, H, W\) tensor, got \(1, 1, 64, 64\)"):
        model(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="`images` must be a float tensor"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"`images` of 16x16 are too small .* at least 29x29"):
        model(torch.rand(1, 3, 16, 16))
    assert model.encoder.min_input_size() == 29
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 29, 29)).shape == (1, 4, 29, 29)
    with pytest.raises(ValueError, match=r"`hidden_size` = 30 must be divisible by `num_heads` = 4"):
        EfficientSelfAttention(30, num_heads=4, sr_ratio=2)
    with pytest.raises(ValueError, match=r"`sr_ratio` must be an int >= 1"):
        EfficientSelfAttention(32, num_heads=4, sr_ratio=0)
    with pytest.raises(ValueError, match=r"`features` must hold 4 feature maps"):
        AllMLPDecoder((16, 32, 64, 128), 32, 4)([torch.rand(1, 16, 8, 8)])
    with pytest.raises(ValueError, match="`num_labels` must be an int >= 1"):
        hf_config(segformer_tiny_config(), 0)


# ----------------------------------------------------------------------------------------------------------------
# imports


def test_import_does_not_import_transformers():
    code = ("import sys, utils.models.segformer as m; m.segformer_tiny(3); "
            "print(sorted(k for k in sys.modules if k == 'transformers' or k.startswith('transformers.')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
