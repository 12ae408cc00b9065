"""Acoustic frames with librosa: MFCCs, log-energy, YIN pitch and periodicity, spectral shape."""

from __future__ import annotations

import math

import numpy as np

from .spec import N_MFCC, FeatureSpec

# A frame quieter than this is never marked voiced (the "voiced" and "log_f0" columns): room noise
# sits below it. It decides nothing about whether a clip has a voice: the VAD does
# (`msa.features.extractor`), since soft-spoken takes peak near -55 dBFS (RAVDESS actor 20).
QUIET_FRAME_DBFS = -50.0
# Audio whose loudest 20 ms frame is below this has no signal at all (digital silence, a muted
# track): quieter than any microphone's own noise, so the VAD and Whisper are not even asked.
SILENCE_DBFS = -80.0

# YIN search range: covers adult and child speaking voices; a wider range costs time and
# invites octave errors.
F0_MIN, F0_MAX = 60.0, 500.0

YIN_FRAME = 1024  # 64 ms at 16 kHz: at least two periods of F0_MIN

YIN_THRESHOLD = 0.15  # the paper's absolute threshold range is 0.1-0.2

N_FFT = 512  # 32 ms analysis window for the spectral features

N_MELS = 40


def _yin(y: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """YIN pitch and periodicity per frame (centred frames, like librosa's).

    librosa.yin returns only f0; its voicing evidence (the depth of the difference-function
    trough) is what separates voiced from unvoiced frames, so this computes both in one pass.
    """
    from librosa import autocorrelate, util

    y = np.pad(y, YIN_FRAME // 2)
    frames = util.frame(y, frame_length=YIN_FRAME, hop_length=hop)  # (L, n)
    min_p, max_p = int(sr // F0_MAX), min(int(math.ceil(sr / F0_MIN)), YIN_FRAME - 1)
    acf = autocorrelate(frames, max_size=max_p + 1, axis=0)
    energy = np.cumsum(np.square(frames), axis=0)
    # Difference function d(k) = 2 (r(0) - r(k)) - sum_{m<k} y(m)^2 (de Cheveigne & Kawahara).
    d = np.zeros((max_p + 1, frames.shape[1]), dtype=np.float64)
    d[1:] = 2 * (acf[0:1] - acf[1 : max_p + 1]) - energy[:max_p]
    cum = np.cumsum(d[1:], axis=0) / np.arange(1, max_p + 1)[:, None]
    cmnd = d[min_p : max_p + 1] / (cum[min_p - 1 : max_p] + 1e-12)  # lags min_p..max_p
    n_lags = cmnd.shape[0]
    trough = np.zeros_like(cmnd, dtype=bool)
    trough[1:-1] = (cmnd[1:-1] < cmnd[:-2]) & (cmnd[1:-1] <= cmnd[2:])
    below = trough & (cmnd < YIN_THRESHOLD)
    idx = np.where(below.any(0), below.argmax(0), cmnd.argmin(0))
    cols = np.arange(cmnd.shape[1])
    best = cmnd[idx, cols]
    # Parabolic refinement of the trough position.
    inner = (idx > 0) & (idx < n_lags - 1)
    a = cmnd[np.clip(idx - 1, 0, n_lags - 1), cols]
    c = cmnd[np.clip(idx + 1, 0, n_lags - 1), cols]
    denom = a - 2 * best + c
    shift = np.where(inner & (np.abs(denom) > 1e-12), 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    shift = np.clip(shift, -1, 1)
    f0 = sr / (min_p + idx + shift)
    periodicity = np.clip(1.0 - best, 0.0, 1.0)
    return f0.astype(np.float32), periodicity.astype(np.float32)


def acoustic_features(audio: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Per-frame acoustic features (T, spec.acoustic_dim) float32 at ``spec.acoustic_rate``.

    Frame t is centred at ``t / acoustic_rate`` seconds; T = 1 + len(audio) // hop.
    """
    import librosa

    sr, hop = spec.sample_rate, spec.hop_length
    y = np.ascontiguousarray(audio, dtype=np.float32)
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    mag = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=hop, center=True))
    power = mag**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS, fmin=20.0, fmax=sr / 2)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=N_MFCC)
    rms = np.sqrt(np.maximum(power.sum(0) * 2 / N_FFT**2, 0.0))  # Parseval, Hann-window scale aside
    log_energy = np.log(rms + 1e-5)
    centroid = librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=N_FFT)[0] / 1000.0
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=sr, n_fft=N_FFT, roll_percent=0.85)[0] / 1000.0
    flatness = librosa.feature.spectral_flatness(S=mag)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=hop, center=True)[0]
    f0, periodicity = _yin(y, sr, hop)
    n = min(mfcc.shape[1], f0.size, zcr.size)
    loud = log_energy[:n] > math.log(10 ** (QUIET_FRAME_DBFS / 20))
    voiced = (periodicity[:n] > 1 - YIN_THRESHOLD * 2) & loud
    log_f0 = np.where(voiced, np.log2(f0[:n] / 100.0), 0.0)
    feats = np.concatenate(
        [
            mfcc[:, :n],
            np.stack(
                [
                    log_energy[:n],
                    log_f0,
                    periodicity[:n],
                    voiced.astype(np.float32),
                    centroid[:n],
                    rolloff[:n],
                    flatness[:n],
                    zcr[:n],
                ]
            ),
        ],
        axis=0,
    ).T
    return np.ascontiguousarray(feats, dtype=np.float32)


def loudest_dbfs(audio: np.ndarray, frame: int = 320) -> float:
    """Level of the loudest ``frame``-sample window in dBFS (-inf for digital silence)."""
    if audio.size == 0:
        return -math.inf
    n = audio.size // frame
    x = audio[: n * frame].reshape(n, frame) if n else audio[None, :]
    peak = float(np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1)).max())
    return 20 * math.log10(peak) if peak > 0 else -math.inf
