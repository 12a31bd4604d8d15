"""The spectrogram against a reference written independently here, frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from model.audio import N_BINS, SAMPLE_RATE, at_level, at_tempo, spectrogram, spectrogram_level
from model.embed import crop_windows


def reference_spectrogram(wave: np.ndarray) -> np.ndarray:
    """Paper §2.2 spelled out with loops: 2048-sample Hann frames every 1102.5 samples, 16 bands per
    octave between 30 Hz and 6 kHz on unique FFT bins, unit-area triangles, log10(1 + x)."""
    bin_hz = SAMPLE_RATE / 2048
    centres = [440.0 * 2 ** (k / 16) for k in range(-400, 400)]
    bins = sorted({int(round(f / bin_hz)) for f in centres if 30.0 <= f <= 6000.0})
    fb = np.zeros((1025, len(bins) - 2))
    for j in range(len(bins) - 2):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for b in range(lo, mid):
            fb[b, j] = (b - lo) / (mid - lo)
        for b in range(mid, hi):
            fb[b, j] = (hi - b) / (hi - mid)
        fb[:, j] /= fb[:, j].sum()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)
    padded = np.concatenate([np.zeros(1024), wave, np.zeros(1024)])
    frames = []
    i = 0
    while int(i * 1102.5) <= len(wave):
        start = int(i * 1102.5)
        frames.append(np.log10(1 + np.abs(np.fft.rfft(padded[start : start + 2048] * window)) @ fb))
        i += 1
    return np.array(frames)


def test_spectrogram_matches_reference() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(SAMPLE_RATE * 3.3)) / SAMPLE_RATE
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    ours, ref = spectrogram(wave), reference_spectrogram(wave)
    assert ours.shape == ref.shape == (ref.shape[0], N_BINS)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4)


def test_spectrogram_length_follows_fractional_hop() -> None:
    # 300 s at 1102.5 samples per hop is exactly 6000 hops: an integer hop of 1102 would give 6002.
    wave = np.zeros(SAMPLE_RATE * 300, dtype=np.float32)
    assert spectrogram(wave).shape == (6001, N_BINS)
    assert spectrogram(np.zeros(0, dtype=np.float32)).shape == (0, N_BINS)


def test_sine_peaks_in_its_band() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    low = spectrogram(np.sin(2 * np.pi * 220 * t).astype(np.float32)).mean(0)
    high = spectrogram(np.sin(2 * np.pi * 1760 * t).astype(np.float32)).mean(0)
    assert high.argmax() > low.argmax() + 20  # three octaves up is far up the log-frequency axis


def test_crops_are_centred_and_zero_padded_beyond_the_ends() -> None:
    spec = np.random.default_rng(1).random((100, N_BINS)).astype(np.float32)
    crops = crop_windows(spec.T, np.array([0, 50, 99]), 48)
    assert crops.shape == (3, N_BINS, 48)
    np.testing.assert_array_equal(crops[1, :, 24], spec[50])
    assert not crops[0, :, :24].any() and not crops[2, :, 25:].any()  # beyond the spectrogram: silence


def test_uploads_decode_wav_flac_ogg_and_mp3() -> None:
    import io

    import soundfile as sf

    from indexer.settings import Settings
    from service.uploads import decode_audio

    t = np.arange(44100 * 3) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for fmt, subtype in (("WAV", None), ("FLAC", None), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")):
        buf = io.BytesIO()
        sf.write(buf, np.stack([tone, tone], axis=1), 44100, format=fmt, subtype=subtype)  # stereo, 44.1 kHz
        wave = decode_audio(buf.getvalue(), Settings())
        assert wave.ndim == 1 and abs(len(wave) - 3 * 22050) < 2000, fmt  # mono at the model rate
        assert 0.25 < float(np.abs(wave).max()) < 0.36, fmt


def _phrase(gain: float) -> np.ndarray:
    """Two seconds of a decaying A4 with a pause, at a given gain."""
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    return (gain * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * (t % 1)) * (t % 1 < 0.6)).astype(np.float32)


def test_a_louder_recording_gives_the_same_input_once_levelled() -> None:
    quiet, loud = spectrogram(_phrase(0.01)), spectrogram(_phrase(0.9))  # 39 dB apart
    assert np.abs(quiet - loud).max() > 0.5  # log10(1 + x) alone is not scale invariant
    np.testing.assert_allclose(at_level(loud, 30.0), at_level(quiet, 30.0), rtol=1e-4, atol=1e-5)
    assert abs(spectrogram_level(at_level(loud, 30.0)) - 30.0) < 1e-3


def test_levelling_leaves_silence_silent() -> None:
    silence = spectrogram(np.zeros(SAMPLE_RATE, dtype=np.float32))
    assert spectrogram_level(silence) == 0.0
    np.testing.assert_array_equal(at_level(silence, 30.0), silence)


def test_a_phrase_at_twice_the_tempo_is_the_spectrogram_at_every_other_frame() -> None:
    spec = spectrogram(_phrase(0.5))
    np.testing.assert_array_equal(at_tempo(spec, 2.0), spec[::2])
    slower = at_tempo(spec, 0.5)  # half the tempo: twice the frames, the new ones halfway between
    assert len(slower) == 2 * len(spec) - 1
    np.testing.assert_array_equal(slower[::2], spec)
    np.testing.assert_allclose(slower[1::2], (spec[:-1] + spec[1:]) / 2, rtol=1e-6)
    assert at_tempo(spec, 1.0) is spec


def test_a_tempo_factor_must_be_positive() -> None:
    with pytest.raises(ValueError):
        at_tempo(spectrogram(_phrase(0.5)), 0.0)
