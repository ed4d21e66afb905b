"""Speech Commands and ESC-50 loaders over tiny trees in their real layouts, and the front-end."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from gptfl_ray.data import load_dataset, partition
from gptfl_ray.data.audio import N_MELS, feature_shape, log_mel
from gptfl_ray.data.base import Dataset
from gptfl_ray.data.speechcommands import CACHE_NAME, KEYWORDS
from gptfl_ray.errors import ConfigError

SPEAKERS = ("0a7c2a8d", "1b8d3c9e", "2c9e4daf", "3dafe5b0")  # train, train, validation, test

ESC_CATEGORIES = (
    "dog",
    "rooster",
    "pig",
    "cow",
    "frog",
    "cat",
    "hen",
    "insects",
    "sheep",
    "crow",
    "rain",
    "sea_waves",
    "crackling_fire",
    "crickets",
    "chirping_birds",
    "water_drops",
    "wind",
    "pouring_water",
    "toilet_flush",
    "thunderstorm",
    "crying_baby",
    "sneezing",
    "clapping",
    "breathing",
    "coughing",
    "footsteps",
    "laughing",
    "brushing_teeth",
    "snoring",
    "drinking_sipping",
    "door_wood_knock",
    "mouse_click",
    "keyboard_typing",
    "door_wood_creaks",
    "can_opening",
    "washing_machine",
    "vacuum_cleaner",
    "clock_alarm",
    "clock_tick",
    "glass_breaking",
    "helicopter",
    "chainsaw",
    "siren",
    "car_horn",
    "engine",
    "train",
    "church_bells",
    "airplane",
    "fireworks",
    "hand_saw",
)


def _tagged(n: int, k: int, s: int, sr: int = 16_000) -> np.ndarray:
    """A quiet tone whose first two samples carry (label, speaker) so the test can trace files."""
    t = np.arange(n) / sr
    w = 0.1 * np.sin(2 * np.pi * (300 + 40 * k) * t)
    w[0], w[1] = k / 100, s / 100
    return w.astype(np.float32)


@pytest.fixture
def speech_tree(tmp_path):
    base = tmp_path / "SpeechCommands" / "speech_commands_v0.02"
    val, test = [], []
    for k, word in enumerate(KEYWORDS):
        (base / word).mkdir(parents=True)
        for s, spk in enumerate(SPEAKERS):
            n = 8000 if (k + s) % 7 == 0 else 16_000  # some recordings are shorter than 1 s
            sf.write(base / word / f"{spk}_nohash_0.wav", _tagged(n, k, s), 16_000, subtype="PCM_16")
            rel = f"{word}/{spk}_nohash_0.wav"
            if s == 2:
                val.append(rel)
            elif s == 3:
                test.append(rel)
    sf.write(base / "yes" / f"{SPEAKERS[0]}_nohash_1.wav", _tagged(16_000, KEYWORDS.index("yes"), 0), 16_000)
    (base / "_background_noise_").mkdir()
    sf.write(base / "_background_noise_" / "white_noise.wav", np.zeros(32_000, np.float32), 16_000)
    (base / "validation_list.txt").write_text("\n".join(val) + "\n")
    (base / "testing_list.txt").write_text("\n".join(test) + "\n")
    return tmp_path


def test_speechcommands_layout_split_and_speakers(speech_tree):
    ds = load_dataset("speechcommands", data_dir=str(speech_tree))
    assert ds.modality == "audio" and ds.class_names == KEYWORDS and len(KEYWORDS) == 35
    assert "_background_noise_" not in ds.class_names
    # train: speakers 0 and 1 (plus one extra "yes" take), validation: speaker 2, test: speaker 3
    assert ds.x_train.shape == (71, 16_000) and ds.x_test.shape == (35, 16_000) and ds.x_val.shape == (35, 16_000)
    assert set(np.round(ds.x_val[:, 1] * 100).astype(int)) == {2}
    np.testing.assert_allclose(ds.x_val[:, 0], ds.y_val / 100, atol=1e-4)
    assert ds.x_train.dtype == np.float32 and ds.extra["sample_rate"] == 16_000
    np.testing.assert_allclose(ds.x_train[:, 0], ds.y_train / 100, atol=1e-4)  # labels match files
    spk_train = np.round(ds.x_train[:, 1] * 100).astype(int)
    assert set(spk_train) == {0, 1} and set(np.round(ds.x_test[:, 1] * 100).astype(int)) == {3}
    np.testing.assert_allclose(ds.x_test[:, 0], ds.y_test / 100, atol=1e-4)
    # groups: one int code per training clip, the speaker from the file name
    assert ds.groups.dtype == np.int64 and ds.groups.shape == (71,)
    assert ds.extra["speakers"] == SPEAKERS[:2]
    np.testing.assert_array_equal(ds.groups, spk_train)
    # short recordings are zero-padded at the end to 1 s
    short = [i for i in range(71) if (ds.y_train[i] + spk_train[i]) % 7 == 0]
    assert short and np.all(ds.x_train[short, 8000:] == 0) and np.abs(ds.x_train[short, 100:8000]).max() > 0.05


def test_speechcommands_natural_partition_by_speaker(speech_tree):
    ds = load_dataset("speechcommands", data_dir=str(speech_tree))
    parts = partition(ds.y_train, 2, "natural", seed=0, groups=ds.groups)
    assert sorted(len(p) for p in parts) == [35, 36]
    assert all(len(set(ds.groups[p])) == 1 for p in parts)  # a client is one speaker
    assert {int(ds.groups[p][0]) for p in parts} == {0, 1}
    with pytest.raises(ConfigError, match="only 2 groups"):
        partition(ds.y_train, 3, "natural", seed=0, groups=ds.groups)


def test_speechcommands_cache_is_used_and_invalidated(speech_tree):
    first = load_dataset("speechcommands", data_dir=str(speech_tree))
    base = speech_tree / "SpeechCommands" / "speech_commands_v0.02"
    assert (base / CACHE_NAME).is_file()
    # Overwrite a WAV in place: an unchanged file list means the cache (old audio) is used.
    sf.write(base / "bed" / f"{SPEAKERS[0]}_nohash_0.wav", np.zeros(16_000, np.float32), 16_000)
    again = load_dataset("speechcommands", data_dir=str(speech_tree))
    np.testing.assert_array_equal(first.x_train, again.x_train)
    # A new file changes the list: decoded afresh, and the overwritten WAV now reads as silence.
    sf.write(base / "bed" / f"{SPEAKERS[1]}_nohash_1.wav", _tagged(16_000, 1, 1), 16_000)
    fresh = load_dataset("speechcommands", data_dir=str(speech_tree))
    assert len(fresh.x_train) == 72
    bed0 = np.flatnonzero((fresh.y_train == 1) & (fresh.groups == 0))
    assert len(bed0) == 1 and np.all(fresh.x_train[bed0] == 0)


def test_speechcommands_missing_data_errors(tmp_path, speech_tree):
    with pytest.raises(ConfigError) as e:
        load_dataset("speechcommands", data_dir=str(tmp_path / "nowhere"))
    assert e.value.subject == "data.data_dir" and "\n" not in str(e.value) and "data.download" in str(e.value)
    base = speech_tree / "SpeechCommands" / "speech_commands_v0.02"
    (base / "zero").rename(base / "zero_")
    with pytest.raises(ConfigError, match="lacks keyword folders: zero"):
        load_dataset("speechcommands", data_dir=str(speech_tree))
    (base / "zero_").rename(base / "zero")
    (base / "validation_list.txt").write_text("")
    with pytest.raises(ConfigError, match="no validation clips"):
        load_dataset("speechcommands", data_dir=str(speech_tree))
    (base / "validation_list.txt").write_text((base / "testing_list.txt").read_text())
    with pytest.raises(ConfigError, match="in both validation_list.txt and testing_list.txt"):
        load_dataset("speechcommands", data_dir=str(speech_tree))
    (base / "testing_list.txt").unlink()
    with pytest.raises(ConfigError, match="testing_list.txt is missing"):
        load_dataset("speechcommands", data_dir=str(speech_tree))


def _wav_source(root, rel_paths, length):
    """The loader's own decode of every file, to compare splits against."""
    from gptfl_ray.data.audio import fit_length, read_wav, resample

    return np.stack([fit_length(resample(*read_wav(root / r)), length) for r in rel_paths])


def test_speechcommands_splits_are_the_official_lists_disjoint_and_deterministic(speech_tree, splits_check):
    base = speech_tree / "SpeechCommands" / "speech_commands_v0.02"
    rels = [f"{w}/{p.name}" for w in KEYWORDS for p in sorted((base / w).glob("*_nohash_*.wav"))]
    # through the loader's int16 cache, as every load after the first is
    source = np.round(_wav_source(base, rels, 16_000) * 32768.0).clip(-32768, 32767).astype(np.int16)
    labels = np.array([KEYWORDS.index(r.split("/")[0]) for r in rels])
    ds = splits_check(
        lambda: load_dataset("speechcommands", data_dir=str(speech_tree)),
        source.astype(np.float32) / np.float32(32768.0),
        labels,
    )
    # validation and test speakers never appear among the clients' groups
    assert len(ds.extra["speakers"]) == 2 and ds.groups.shape == ds.y_train.shape


@pytest.fixture
def esc_tree(tmp_path):
    base = tmp_path / "ESC-50-master"
    (base / "audio").mkdir(parents=True)
    (base / "meta").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    sr = 44_100
    for k, cat in enumerate(ESC_CATEGORIES):
        for j, fold in enumerate((k % 4 + 1, 5)):  # one training clip, one fold-5 clip per class
            name = f"{fold}-{1000 + k}-{'AB'[j]}-{k}.wav"
            t = np.arange(sr // 4) / sr
            amp = 0.3 + 0.004 * (2 * k + j)  # a per-clip amplitude: the split test traces clips by it
            sf.write(
                base / "audio" / name, (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, subtype="PCM_16"
            )
            rows.append(f"{name},{fold},{k},{cat},False,{1000 + k},{'AB'[j]}")
    # A full 5 s clip with a loud burst at 3.0-3.5 s, for the crop test.
    wave = np.zeros(5 * sr, np.float32)
    wave[3 * sr : int(3.5 * sr)] = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(sr // 2) / sr)
    sf.write(base / "audio" / "1-9999-A-0.wav", wave, sr, subtype="PCM_16")
    rows.append("1-9999-A-0.wav,1,0,dog,True,9999,A")
    (base / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_esc50_layout_folds_and_resampling(esc_tree):
    ds = load_dataset("esc50", data_dir=str(esc_tree))
    assert len(ds.class_names) == 50 and ds.class_names[0] == "dog"
    assert ds.class_names[14] == "chirping birds" and ds.class_names[30] == "door wood knock"
    # fold 5 is test, fold 4 validation (classes k = 3 mod 4 have their training clip there)
    assert ds.x_train.shape == (39, 80_000) and ds.x_test.shape == (50, 80_000) and ds.x_val.shape == (12, 80_000)
    assert sorted(ds.y_test.tolist()) == list(range(50)) and ds.groups is None
    assert ds.y_val.tolist() == list(range(3, 50, 4))
    # 0.25 s at 44.1 kHz -> 4000 samples at 16 kHz, then zero padding to 5 s
    clip = ds.x_train[0]
    assert np.abs(clip[200:3800]).max() > 0.25 and np.all(clip[4100:] == 0)
    # the 440 Hz tone survives resampling: its spectrum peaks at 440 Hz
    spec = np.abs(np.fft.rfft(clip[:4000]))
    assert abs(np.argmax(spec) * 16_000 / 4000 - 440) <= 8
    assert ds.extra == {"sample_rate": 16_000, "test_fold": 5, "val_fold": 4, "clip_seconds": 5.0}
    assert ds.input_shape == (N_MELS, 501)


def test_esc50_short_crop_keeps_the_loudest_window(esc_tree):
    ds = load_dataset("esc50", data_dir=str(esc_tree))
    full = ds.x_train[-1]  # 1-9999-A-0.wav is the last csv row, fold 1
    assert np.abs(full[:47_000]).max() < 1e-3 and np.abs(full[48_500:55_500]).max() > 0.7
    from gptfl_ray.data.esc50 import load_esc50

    short = load_esc50(data_dir=str(esc_tree), clip_seconds=1.0)
    assert short.x_train.shape == (39, 16_000) and short.input_shape == (N_MELS, 101)
    burst = short.x_train[-1]
    assert np.abs(burst).max() > 0.7 and np.count_nonzero(np.abs(burst) > 0.1) >= 6900
    with pytest.raises(ConfigError, match="clip_seconds"):
        load_esc50(data_dir=str(esc_tree), clip_seconds=6)


def test_esc50_splits_are_folds_disjoint_and_deterministic(esc_tree, splits_check):
    import csv

    from gptfl_ray.data.esc50 import load_esc50

    base = esc_tree / "ESC-50-master"
    rows = list(csv.DictReader(open(base / "meta" / "esc50.csv")))
    source = _wav_source(base / "audio", [r["filename"] for r in rows], 80_000)
    labels = np.array([int(r["target"]) for r in rows])
    # clips are traced by their tone's amplitude (0.004 apart): the loader resamples in batches,
    # which may differ from one-by-one resampling in the last float bit
    ds = splits_check(
        lambda: load_esc50(data_dir=str(esc_tree), val_fold=2),
        source,
        labels,
        key=lambda w: int(round(float(np.abs(w[1000:3000]).max()) * 500)),
    )
    assert ds.y_val.tolist() == [k for k in range(50) if k % 4 == 1] and ds.extra["val_fold"] == 2
    with pytest.raises(ConfigError, match="val_fold"):
        load_esc50(data_dir=str(esc_tree), val_fold=5)
    with pytest.raises(ConfigError, match="val_fold"):
        load_esc50(data_dir=str(esc_tree), val_fold=6)


def test_esc50_missing_data_errors(tmp_path, esc_tree):
    with pytest.raises(ConfigError) as e:
        load_dataset("esc50", data_dir=str(tmp_path / "nowhere"))
    assert e.value.subject == "data.data_dir" and "\n" not in str(e.value) and "esc50.csv" in str(e.value)
    (esc_tree / "ESC-50-master" / "audio" / "1-9999-A-0.wav").unlink()
    with pytest.raises(ConfigError, match="lacks 1 clips"):
        load_dataset("esc50", data_dir=str(esc_tree))


def test_front_end_shapes_normalisation_and_pitch():
    sr = 16_000
    t = np.arange(sr) / sr
    low = 0.5 * np.sin(2 * np.pi * 500 * t)
    high = 0.01 * np.sin(2 * np.pi * 4000 * t)  # 34 dB quieter: the per-clip norm removes gain
    feats = log_mel(np.stack([low, high, np.zeros(sr)]).astype(np.float32))
    assert feats.shape == (3, 128, 101) and feats.dtype == np.float32 and feature_shape(sr) == (128, 101)
    assert log_mel(low.astype(np.float32)).shape == (128, 101)
    for f in feats[:2]:
        assert abs(f.mean()) < 1e-4 and abs(f.std() - 1) < 1e-3
    assert np.all(feats[2] == 0)  # silence: constant spectrogram -> zeros, not NaN
    peak_low, peak_high = (int(np.argmax(f[:, 50])) for f in feats[:2])
    assert peak_low < 40 < 80 < peak_high  # mel bins rise with pitch
    # the same clip in different company gives the same features (per-utterance norm)
    np.testing.assert_allclose(log_mel(high[None].astype(np.float32))[0], feats[1], atol=1e-5)


def test_dataset_prepare_audio_uses_front_end_and_images_are_unchanged():
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal((3, 16_000))).astype(np.float32)
    ds = Dataset(
        "toy",
        "audio",
        ("a", "b"),
        wav,
        np.array([0, 1, 0]),
        wav[:1],
        np.array([1]),
        max_value=1.0,
        extra={"sample_rate": 16_000},
    )
    x = ds.prepare(ds.x_train)
    assert x.shape == (3, *ds.input_shape) == (3, 128, 101)
    np.testing.assert_array_equal(x, log_mel(wav))
    img = rng.integers(0, 256, (2, 3, 4, 4)).astype(np.uint8)
    ids = Dataset(
        "img",
        "image",
        ("a", "b"),
        img,
        np.array([0, 1]),
        img,
        np.array([0, 1]),
        mean=(0.1, 0.2, 0.3),
        std=(0.5, 0.6, 0.7),
    )
    want = (img.astype(np.float32) / np.float32(255.0) - np.float32([0.1, 0.2, 0.3]).reshape(1, 3, 1, 1)) / np.float32(
        [0.5, 0.6, 0.7]
    ).reshape(1, 3, 1, 1)
    assert ids.input_shape == (3, 4, 4)
    np.testing.assert_array_equal(ids.prepare(img), want)
