"""Network shapes, the CCA layer, the ranking loss and checkpoint round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model import checkpoint
from model.config import ModelConfig, TrainConfig
from model.data import dataset as ds
from model.nets import CCALayer, SheetAudioNet, cca_projections, infonce_loss, ranking_loss
from model.pairs import PairIndex, audio_batch, sheet_batch


def test_pathway_shapes() -> None:
    cfg = ModelConfig()
    net = SheetAudioNet(cfg).eval()
    with torch.no_grad():
        x = net.embed_sheet(torch.rand(3, *cfg.sheet_crop))
        y = net.embed_audio(torch.rand(5, *cfg.audio_crop))
    assert x.shape == (3, 32) and y.shape == (5, 32)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(3))
    assert 100_000 < sum(p.numel() for p in net.parameters()) < 250_000  # Table 1 is about 168k


def test_cca_projections_decorrelate_and_whiten() -> None:
    g = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    shared = randn(2000, 8)
    x = torch.cat([shared, randn(2000, 24)], 1) @ randn(32, 32)
    y = torch.cat([shared + 0.1 * randn(2000, 8), randn(2000, 24)], 1)
    mx, my, a, b = cca_projections(x, y, reg=1e-6)
    px, py = (x - mx) @ a, (y - my) @ b
    eye = torch.eye(32, dtype=torch.float64)
    torch.testing.assert_close(px.T @ px / 1999, eye, atol=1e-3, rtol=0)
    torch.testing.assert_close(py.T @ py / 1999, eye, atol=1e-3, rtol=0)
    cross = px.T @ py / 1999
    off_diag = cross - torch.diag(cross.diag())
    assert off_diag.abs().max() < 1e-3  # canonical pairs are uncorrelated with each other
    assert cross.diag()[:8].min() > 0.95  # the 8 shared directions come first, highly correlated


def test_cca_layer_keeps_running_estimates_for_inference() -> None:
    layer = CCALayer(4, reg=1e-3, momentum=1.0)
    x, y = torch.randn(64, 4), torch.randn(64, 4)
    layer.train()
    px, _ = layer(x, y)
    layer.eval()
    torch.testing.assert_close(layer.project_x(x), px)


def test_ranking_loss_is_zero_only_for_separated_pairs() -> None:
    eye = torch.eye(4)
    assert ranking_loss(eye, eye, margin=0.7).item() == 0.0
    assert ranking_loss(eye, eye.roll(1, 0), margin=0.7).item() > 0.0


def test_infonce_loss_prefers_matching_pairs() -> None:
    eye, t = torch.eye(4), torch.tensor(float(np.log(0.1)))
    assert infonce_loss(eye, eye, t).item() < 0.01 < infonce_loss(eye, eye.roll(1, 0), t).item()


@pytest.mark.parametrize("loss_name", ["hinge", "infonce"])
def test_loss_falls_when_overfitting_a_tiny_set(dataset: Path, loss_name: str) -> None:
    torch.manual_seed(0)
    rec = ds.load_record(dataset / ds.PIECES_DIR / "bach__bwv66.6.npz")
    # One rendition: distinct onsets, not one onset's snippet repeated across renditions in a tiny batch
    pairs = PairIndex.build([rec], first_rendition_only=True)
    idx = np.arange(0, len(pairs), max(1, len(pairs) // 96))[:96]  # CCA needs more pairs than dimensions
    rng = np.random.default_rng(0)
    net = SheetAudioNet(ModelConfig())
    sheet, audio = sheet_batch(pairs, idx, net.cfg, None, rng), audio_batch(pairs, idx, net.cfg, None, rng)
    log_t = torch.nn.Parameter(torch.tensor(float(np.log(0.1))))
    opt = torch.optim.Adam([*net.parameters(), log_t], lr=TrainConfig().lr)
    losses = []
    for _ in range(25):
        x, y = net(sheet, audio)
        loss = ranking_loss(x, y, 0.7) if loss_name == "hinge" else infonce_loss(x, y, log_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # InfoNCE starts lower (the in-batch CCA already aligns the views) and floors at duplicate onsets
    assert np.mean(losses[-5:]) < (0.5 if loss_name == "hinge" else 0.7) * np.mean(losses[:5])


def test_augmented_batches_keep_shapes(dataset: Path) -> None:
    rec = ds.load_record(dataset / ds.PIECES_DIR / "bach__bwv66.6.npz")
    pairs = PairIndex.build([rec])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(pairs), 16)
    cfg = TrainConfig()
    m = cfg.model
    s_plain, s_aug = sheet_batch(pairs, idx, m, None, rng), sheet_batch(pairs, idx, m, cfg, rng)
    a_plain, a_aug = audio_batch(pairs, idx, m, None, rng), audio_batch(pairs, idx, m, cfg, rng)
    assert s_plain.shape == s_aug.shape == (16, *m.sheet_crop)
    assert a_plain.shape == a_aug.shape == (16, *m.audio_crop)
    assert not torch.equal(s_plain, s_aug) and not torch.equal(a_plain, a_aug)
    assert float(a_aug.min()) >= 0.0


def test_pairs_built_at_a_level_see_every_rendition_at_that_level(dataset: Path) -> None:
    from dataclasses import replace

    from model.audio import spectrogram_level

    rec = ds.load_record(dataset / ds.PIECES_DIR / "bach__bwv66.6.npz")
    louder = replace(rec, renditions=[replace(k, spec=np.log10(1 + 100 * (10**k.spec - 1))) for k in rec.renditions])
    for r in (rec, louder):
        levelled = PairIndex.build([r], level=25.0)
        assert [round(spectrogram_level(k.spec), 3) for k in levelled.records[0].renditions] == [25.0] * len(
            r.renditions
        )
    assert rec.renditions[0].spec is not PairIndex.build([rec], level=25.0).records[0].renditions[0].spec


def test_timbre_augmentation_adds_partials_above_a_tone() -> None:
    from model.pairs import _augment_audio

    spec = np.zeros((1, 92, 10), dtype=np.float32)
    spec[0, 20] = 1.0  # one band sounding
    quiet = TrainConfig(gain_db=0.0, eq_prob=0.0, noise_prob=0.0)
    np.testing.assert_allclose(_augment_audio(spec, quiet, np.random.default_rng(0)), spec, atol=1e-6)
    voiced = _augment_audio(spec, TrainConfig(gain_db=0.0, eq_prob=0.0, noise_prob=0.0, timbre_prob=1.0),
                            np.random.default_rng(0))  # fmt: skip
    grown = set(np.flatnonzero(voiced[0, :, 0] > 1e-6))
    assert grown <= {20, 36, 45, 52} and len(grown) > 1  # octave, twelfth and double octave: 16·log2(k) bins up


def test_masking_silences_one_band_and_one_span_and_is_off_by_default() -> None:
    from model.pairs import _mask

    spec = np.ones((4, 92, 64), dtype=np.float32)
    rng = np.random.default_rng(0)
    assert np.array_equal(_mask(spec.copy(), TrainConfig(), rng), spec)
    assert rng.random() == np.random.default_rng(0).random()  # no draw: recipes before it replay unchanged
    masked = _mask(spec.copy(), TrainConfig(freq_mask_prob=1.0, time_mask_prob=1.0), rng)
    for m in masked:
        silent_bins, silent_frames = np.flatnonzero((m == 0).all(axis=1)), np.flatnonzero((m == 0).all(axis=0))
        assert 1 <= len(silent_bins) <= 12 and np.all(np.diff(silent_bins) == 1)
        assert 1 <= len(silent_frames) <= 10 and np.all(np.diff(silent_frames) == 1)
        assert m.sum() > 0.7 * m.size


def test_checkpoint_round_trip_gives_identical_embeddings(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = SheetAudioNet(ModelConfig())
    net.cca.refit(torch.randn(200, 32), torch.randn(200, 32))
    net.eval()
    version = checkpoint.save(net, tmp_path / "m.pt", {"note": "test"})
    loaded, loaded_version, extra = checkpoint.load(tmp_path / "m.pt")
    s, a = torch.rand(4, *net.cfg.sheet_crop), torch.rand(4, *net.cfg.audio_crop)
    with torch.no_grad():
        torch.testing.assert_close(net.embed_sheet(s), loaded.embed_sheet(s), rtol=0, atol=0)
        torch.testing.assert_close(net.embed_audio(a), loaded.embed_audio(a), rtol=0, atol=0)
    assert version == loaded_version and extra == {"note": "test"}


def test_checkpoint_rejects_unknown_format(tmp_path: Path) -> None:
    torch.save({"format": 999}, tmp_path / "bad.pt")
    with pytest.raises(ValueError):
        checkpoint.load(tmp_path / "bad.pt")


@pytest.mark.parametrize("tempo", [1.0, 0.5])
def test_training_excerpts_are_cut_at_the_models_audio_tempo(dataset: Path, tempo: float) -> None:
    # a spectrogram whose every bin holds its frame's index: an excerpt at tempo 0.5 advances half a frame
    # per column, centred on the onset, so a window holds half the music it holds as played
    from dataclasses import replace

    rec = ds.load_record(dataset / ds.PIECES_DIR / "bach__bwv66.6.npz")
    ramp = [replace(k, spec=np.repeat(np.arange(len(k.spec), dtype=np.float32)[:, None], k.spec.shape[1], 1))
            for k in rec.renditions]  # fmt: skip
    pairs = PairIndex.build([replace(rec, renditions=ramp)], first_rendition_only=True)
    m = ModelConfig(audio_tempo=tempo)
    idx = np.flatnonzero((pairs.frame > 100) & (pairs.frame < len(ramp[0].spec) - 100))[:8]
    batch = audio_batch(pairs, idx, m, None, np.random.default_rng(0)).numpy()
    centre = m.audio_crop[1] // 2
    steps = np.diff(batch[:, 0, centre - 10 : centre + 10], axis=1)
    np.testing.assert_allclose(steps, tempo, atol=1e-4)
    np.testing.assert_allclose(batch[:, 0, centre], pairs.frame[idx], atol=1.0)
