"""`siren-detector devices`: the input devices PortAudio sees and the sample rates each accepts."""

from __future__ import annotations

from detector.errors import DetectorError

PROBE_RATES = (8000, 16000, 22050, 32000, 44100, 48000, 96000)


def list_input_devices() -> list[dict[str, object]]:
    """One entry per input device: index, name, host API, channels, default rate, accepted rates."""
    try:
        import sounddevice
    except (ImportError, OSError) as error:
        raise DetectorError(f"no audio input support: {error} (install libportaudio2 and the 'mic' extra)") from None
    devices = []
    for index, device in enumerate(sounddevice.query_devices()):
        if device["max_input_channels"] < 1:
            continue
        accepted = []
        for rate in PROBE_RATES:
            try:
                sounddevice.check_input_settings(device=index, samplerate=rate, channels=1, dtype="float32")
                accepted.append(rate)
            except (sounddevice.PortAudioError, ValueError):
                continue
        devices.append({
            "index": index,
            "name": device["name"],
            "host_api": sounddevice.query_hostapis(device["hostapi"])["name"],
            "max_input_channels": device["max_input_channels"],
            "default_samplerate": int(device["default_samplerate"]),
            "accepted_samplerates": accepted,
        })
    return devices
