"""Signal processing of the SynthEmo generator: resampling through a channel, noise, rooms, levels, WAV output.

Everything is plain numpy on whole signals (FFT based) and deterministic for a
given random generator.
"""

import math

import numpy as np
import soundfile as sf

from speechbrain_ext.files import atomic_path

__all__ = ["SAMPLE_RATE", "active_power", "channel_response", "coloured_noise", "normalise_noise", "resample",
           "speech_bounds", "synthetic_rir", "write_wav"]

SAMPLE_RATE = 16000


def _smooth_at_least(n):
    """Smallest 2^a 3^b 5^c 7^d >= n (fast FFT sizes)."""
    best = 1 << max(0, math.ceil(math.log2(max(n, 1))))
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                p2 = p3
                while p2 < n:
                    p2 *= 2
                best = min(best, p2)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


def resample(signal, orig_sr, new_sr, response=None):
    """Band-limited FFT resampling, optionally through a zero-phase filter.

    One FFT pair does both the rate change and the channel filter. The signal is
    zero-padded to a length whose FFT is fast; speech padded with silence at both
    ends makes the circular wrap-around harmless.

    Arguments
    ---------
    signal : numpy.ndarray
        1-D signal.
    orig_sr, new_sr : int
        Sampling rates.
    response : callable or None
        ``response(freqs_hz) -> gain`` applied in the frequency domain.

    Returns
    -------
    numpy.ndarray
        ``round(len(signal) * new_sr / orig_sr)`` float64 samples.

    Example
    -------
    >>> t = np.arange(22050) / 22050
    >>> y = resample(np.sin(2 * np.pi * 1000 * t), 22050, 16000)
    >>> len(y), int(np.argmax(np.abs(np.fft.rfft(y))))
    (16000, 1000)
    """
    signal = np.asarray(signal, dtype=np.float64)
    g = math.gcd(orig_sr, new_sr)
    up, down = new_sr // g, orig_sr // g
    m = _smooth_at_least(math.ceil(len(signal) / down) + 1)
    n_in, n_out = m * down, m * up
    spectrum = np.fft.rfft(signal, n_in)
    out = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    k = min(len(spectrum), len(out))
    out[:k] = spectrum[:k]
    freqs = np.arange(len(out)) * (new_sr / n_out)
    nyquist = min(orig_sr, new_sr) / 2
    # A raised-cosine roll-off over the last 6 % below the new Nyquist avoids
    # the ringing of a brick-wall cut.
    edge = np.clip((freqs - 0.94 * nyquist) / (0.06 * nyquist), 0.0, 1.0)
    out *= 0.5 * (1 + np.cos(np.pi * edge))
    if response is not None:
        out *= response(freqs)
    y = np.fft.irfft(out, n_out) * (up / down)
    return y[: round(len(signal) * up / down)]


def channel_response(freqs, tilt_db_per_octave=0.0, highpass_hz=None, lowpass_hz=None):
    """Magnitude response of a recording channel: tilt and Butterworth band-pass.

    Example
    -------
    >>> h = channel_response(np.array([0.0, 1000.0, 7900.0]), 0.0, 100.0, 4000.0)
    >>> float(h[0]), round(float(h[1]), 2), bool(h[2] < 0.1)
    (0.0, 1.0, True)
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    gain = 10 ** (tilt_db_per_octave * np.log2(np.maximum(freqs, 50.0) / 1000.0) / 20)
    if highpass_hz:
        with np.errstate(divide="ignore"):
            gain = gain / np.sqrt(1 + (highpass_hz / np.maximum(freqs, 1e-9)) ** 4)
        gain[freqs == 0] = 0.0
    if lowpass_hz:
        gain = gain / np.sqrt(1 + (freqs / lowpass_hz) ** 8)
    return gain


def coloured_noise(n_samples, alpha, rng):
    """Gaussian noise with a ``1/f**alpha`` power spectrum (0 white, 1 pink, 2 brown), unit RMS.

    Example
    -------
    >>> x = coloured_noise(16000, 1.0, np.random.default_rng(0))
    >>> x.shape, round(float(np.sqrt(np.mean(x ** 2))), 3)
    ((16000,), 1.0)
    """
    n_fft = _smooth_at_least(n_samples)
    freqs = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)
    shape = (np.maximum(freqs, 20.0) / 1000.0) ** (-alpha / 2)
    shape[0] = 0.0
    spectrum = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) * shape
    x = np.fft.irfft(spectrum, n_fft)[:n_samples]
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def active_power(x, sr=SAMPLE_RATE, floor_db=40.0):
    """Mean power of the frames within ``floor_db`` of the loudest 20 ms frame.

    Example
    -------
    >>> x = np.concatenate([np.zeros(8000), np.ones(8000)])
    >>> round(float(active_power(x)), 3)
    1.0
    """
    hop = int(0.02 * sr)
    n = len(x) // hop
    if n == 0:
        return float(np.mean(x ** 2)) if len(x) else 0.0
    frames = (x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)
    keep = frames >= frames.max() * 10 ** (-floor_db / 10)
    return float(frames[keep].mean())


def synthetic_rir(rng, rt60, sr=SAMPLE_RATE):
    """A room impulse response: direct path first, sparse early reflections, then
    exponentially decaying, slightly low-passed noise reaching -60 dB at ``rt60``.

    Example
    -------
    >>> h = synthetic_rir(np.random.default_rng(0), 0.5)
    >>> int(np.argmax(np.abs(h))), float(h[0]), len(h) > 0.5 * 16000
    (0, 1.0, True)
    """
    n = int((1.1 * rt60 + 0.02) * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    # Absorption grows with frequency: a one-pole low-pass dulls the tail.
    tail = _one_pole(tail, rng.uniform(0.0, 0.6))
    start = int(rng.uniform(0.002, 0.006) * sr)
    tail[:start] = 0.0
    drr_db = rng.uniform(0.0, 10.0)
    tail *= math.sqrt(10 ** (-drr_db / 10) / (np.sum(tail ** 2) + 1e-12))
    for _ in range(int(rng.integers(3, 9))):
        pos = int(rng.uniform(0.002, 0.04) * sr)
        tail[pos] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6) * math.exp(-pos / sr / 0.03)
    h = np.clip(tail, -0.9, 0.9)
    h[0] = 1.0
    return h.astype(np.float32)


def _one_pole(x, a):
    """y[n] = (1 - a) x[n] + a y[n-1], computed in blocks through an FFT convolution."""
    if a <= 0:
        return x
    length = min(len(x), int(math.ceil(math.log(1e-6) / math.log(a))) + 1)
    kernel = (1 - a) * a ** np.arange(length)
    n_fft = _smooth_at_least(len(x) + length)
    return np.fft.irfft(np.fft.rfft(x, n_fft) * np.fft.rfft(kernel, n_fft), n_fft)[: len(x)]



def speech_bounds(x, margin_start, margin_end, sr):
    """Replace eSpeak's fixed leading/trailing silence by the given margins (seconds).

    Silence length then gives no cue to the synthesiser settings.

    Example
    -------
    >>> x = np.concatenate([np.zeros(100), np.ones(10), np.zeros(100)])
    >>> y = speech_bounds(x, 0.002, 0.001, 1000)
    >>> len(y), int(np.argmax(y))
    (13, 2)
    """
    if len(x) == 0:
        return x
    level = np.abs(x)
    idx = np.nonzero(level > level.max() * 10 ** (-50 / 20))[0]
    start, end = idx[0] - int(margin_start * sr), idx[-1] + 1 + int(margin_end * sr)
    return np.concatenate([np.zeros(max(0, -start)), x[max(0, start):min(len(x), end)],
                           np.zeros(max(0, end - len(x)))])



def normalise_noise(x):
    """Scale a noise file to -26 dBFS RMS, then below a 0.98 peak.

    Example
    -------
    >>> y = normalise_noise(np.random.default_rng(0).standard_normal(16000))
    >>> round(20 * math.log10(float(np.sqrt(np.mean(y ** 2)))), 1)
    -26.0
    """
    x = x * (10 ** (-26 / 20) / (math.sqrt(np.mean(x ** 2)) + 1e-12))
    peak = np.max(np.abs(x))
    return x * (0.98 / peak) if peak > 0.98 else x



def write_wav(path, samples, subtype="PCM_16"):
    """Write ``samples`` (floats in [-1, 1]) to ``path`` at 16 kHz, atomically.

    A crash leaves at most a hidden ``.tmp-`` file (:func:`speechbrain_ext.files.atomic_path`),
    which never counts as complete. Integer samples are rounded here, not by
    libsndfile, and float WAV is avoided: its PEAK chunk carries a timestamp,
    which would break byte-identical regeneration.

    Example
    -------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> write_wav(p, np.array([0.0, 0.5, -1.0]))
    >>> sf.read(p, dtype="int16")[0].tolist()
    [0, 16384, -32768]
    """
    bits = {"PCM_16": 16, "PCM_24": 24}[subtype]
    scale = 2 ** (bits - 1)
    data = np.round(np.clip(samples, -1.0, (scale - 1) / scale) * scale).astype(np.int32)
    # libsndfile keeps the top bits of int32 samples.
    data = data.astype(np.int16) if bits == 16 else data << (32 - bits)
    with atomic_path(path, fsync=False) as tmp:
        sf.write(tmp, data, SAMPLE_RATE, subtype=subtype, format="WAV")
