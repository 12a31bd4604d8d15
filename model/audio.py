"""Audio front-end: waveform → log-frequency spectrogram (paper §2.2) → fixed-size excerpts.

The filterbank follows the paper's reference implementation: 16 bands per octave between 30 Hz and
6 kHz, centre frequencies snapped to unique FFT bins, triangular filters normalised to unit area.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 22050  # Hz; every waveform is resampled to this before the spectrogram
FRAME_SIZE = 2048  # samples per FFT frame (Hann window)
FPS = 20  # spectrogram frames per second
HOP = SAMPLE_RATE / FPS  # 1102.5 samples; kept fractional so long recordings do not drift
BANDS_PER_OCTAVE = 16  # logarithmic filterbank resolution
FMIN, FMAX = 30.0, 6000.0  # Hz; band edges of the filterbank
REF_FREQ = 440.0  # Hz; the filterbank's centre frequencies are 440 · 2^(k/16)
N_BINS = 92  # filterbank bins produced by the constants above


@lru_cache(maxsize=4)
def filterbank(sample_rate: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """Triangular log-frequency filterbank of shape (frame_size // 2 + 1, n_bands)."""
    fft_freqs = np.fft.rfftfreq(frame_size, 1.0 / sample_rate)
    k_lo = int(np.floor(BANDS_PER_OCTAVE * np.log2(FMIN / REF_FREQ)))
    k_hi = int(np.ceil(BANDS_PER_OCTAVE * np.log2(FMAX / REF_FREQ)))
    centres = REF_FREQ * 2.0 ** (np.arange(k_lo, k_hi + 1) / BANDS_PER_OCTAVE)
    centres = centres[(centres >= FMIN) & (centres <= FMAX)]
    # Snap to the nearest FFT bin and drop duplicates: low bands collapse onto the same bins.
    bins = np.unique(np.argmin(np.abs(fft_freqs[None, :] - centres[:, None]), axis=1))
    fb = np.zeros((len(fft_freqs), len(bins) - 2), dtype=np.float64)
    for band, (lo, mid, hi) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:], strict=True)):
        rise = np.linspace(0.0, 1.0, mid - lo, endpoint=False)
        fall = np.linspace(1.0, 0.0, hi - mid, endpoint=False)
        fb[lo:mid, band] = rise
        fb[mid:hi, band] = fall
        fb[:, band] /= fb[:, band].sum()
    return fb.astype(np.float32)


def n_frames(n_samples: int) -> int:
    """Number of spectrogram frames for a signal: one per hop, the first centred on sample 0."""
    return int(np.floor(n_samples / HOP)) + 1 if n_samples > 0 else 0


def spectrogram(wave: np.ndarray) -> np.ndarray:
    """Log-frequency magnitude spectrogram of a mono 22.05 kHz signal, shape (T, 92), float32.

    Frame i is centred on sample int(i · 1102.5); the signal is zero-padded at both ends.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono signal, got shape {wave.shape}")
    t = n_frames(len(wave))
    if t == 0:
        return np.zeros((0, N_BINS), dtype=np.float32)
    half = FRAME_SIZE // 2
    padded = np.pad(wave, (half, half))
    starts = (np.arange(t) * HOP).astype(np.int64)
    window = np.hanning(FRAME_SIZE + 1)[:-1].astype(np.float32)  # periodic Hann
    fb = filterbank()
    out = np.empty((t, fb.shape[1]), dtype=np.float32)
    for i in range(0, t, 2048):  # chunked to bound memory on hour-long inputs
        idx = starts[i : i + 2048, None] + np.arange(FRAME_SIZE)[None, :]
        mag = np.abs(np.fft.rfft(padded[idx] * window, axis=1))
        out[i : i + 2048] = np.log10(1.0 + mag @ fb)
    return out


def at_tempo(spec: np.ndarray, factor: float) -> np.ndarray:
    """The spectrogram of the same music played `factor` times as fast: frame i of the result is the
    input at frame i · factor, linearly interpolated between its neighbours (the resampling training's
    excerpt time-stretch does, model/pairs.py). The last frame is kept; 1.0 returns the input."""
    if not factor > 0.0:
        raise ValueError(f"tempo factor must be positive, got {factor}")
    if factor == 1.0 or len(spec) < 2:
        return spec
    t = np.arange(0.0, len(spec) - 1 + 1e-9, factor)
    lo = np.minimum(t.astype(np.int64), len(spec) - 2)
    w = (t - lo).astype(np.float32)[:, None]
    return ((1.0 - w) * spec[lo] + w * spec[lo + 1]).astype(np.float32)


# ---- input level ---------------------------------------------------------------------------------------
# log10(1 + magnitude) is not scale invariant: the same music 20 dB louder (a phone recording normalised
# to full scale, against FluidSynth's quiet output) gives other features. A checkpoint trained with level
# scaling stores the median level of its training spectrograms (ModelConfig.audio_level), and every input,
# in training and at query time, is scaled to it before embedding.
ACTIVE_SHARE = 0.05  # a frame counts as sounding above this share of the 95th-percentile frame energy


def _magnitudes(spec: np.ndarray) -> np.ndarray:
    """The linear filterbank magnitudes behind a log10(1 + x) spectrogram."""
    return np.power(10.0, spec.astype(np.float64)) - 1.0


def _level(lin: np.ndarray) -> float:
    energy = lin.sum(axis=1)
    if energy.size == 0 or float(energy.max()) <= 0.0:
        return 0.0
    return float(energy[energy > ACTIVE_SHARE * np.percentile(energy, 95)].mean())


def spectrogram_level(spec: np.ndarray) -> float:
    """Mean linear filterbank energy of the sounding frames of a log spectrogram (0 for silence)."""
    return _level(_magnitudes(spec))


def at_level(spec: np.ndarray, level: float) -> np.ndarray:
    """The log spectrogram of the same signal scaled so that spectrogram_level gives `level`: scaling a
    waveform scales its filterbank magnitudes by the same factor, so this is exact. Silence stays silent."""
    lin = _magnitudes(spec)
    now = _level(lin)
    if now <= 0.0:
        return spec
    return np.log10(1.0 + np.maximum(lin, 0.0) * (level / now)).astype(np.float32)
