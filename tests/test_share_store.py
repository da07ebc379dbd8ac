"""The share store (rfdetr_demo.image.share): ids, dedup, what a link reopens, the byte budget (oldest use first)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rfdetr_demo.config import load_settings
from rfdetr_demo.image.share import ID_PATTERN, PHOTOS, RECORDS, SharedInput, ShareError, ShareStore, safe_name


def _shared(model: str = "body_b", **changes) -> SharedInput:
    values = {"model": model, "threshold": 0.35, "keypoint_threshold": 0.2, "resolution": 192,
              "views": ["Skeleton", "Labels"], "photo_name": "people.jpg"} | changes  # fmt: skip
    return SharedInput(**values)


def _photo(tmp_path: Path, name: str, size: int, fill: bytes = b"x") -> Path:
    path = tmp_path / name
    path.write_bytes(fill * size)
    return path


def _age(path: Path, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_a_link_reopens_its_photo_and_settings_and_the_same_photo_is_stored_once(tmp_path):
    store = ShareStore(tmp_path / "shares", max_bytes=10_000_000)
    photo = _photo(tmp_path, "people.jpg", 1000, b"\x01")
    first = store.save(photo, _shared())
    second = store.save(photo, _shared(model="body_a", threshold=0.5))
    assert first != second and ID_PATTERN.fullmatch(first) and ID_PATTERN.fullmatch(second)
    assert len(list((store.root / PHOTOS).iterdir())) == 1  # content-addressed: one copy for two links
    shared, stored = store.load(first)
    assert (shared.model, shared.threshold, shared.keypoint_threshold) == ("body_b", 0.35, 0.2)
    assert (shared.resolution, shared.views, shared.photo_name) == (192, ["Skeleton", "Labels"], "people.jpg")
    assert stored.read_bytes() == photo.read_bytes() and stored.suffix == ".jpg"
    assert store.load(second)[0].model == "body_a"
    again = ShareStore(tmp_path / "shares", max_bytes=10_000_000)  # a new process on the same folder
    assert again.load(first)[0] == shared


@pytest.mark.parametrize("share_id", [None, "", "nope", "../links/x", "A" * 22, "A" * 21 + "/", "a" * 200])
def test_unknown_malformed_or_guessed_ids_open_nothing(tmp_path, share_id):
    store = ShareStore(tmp_path, max_bytes=10_000)
    store.save(_photo(tmp_path, "p.png", 10), _shared())
    assert store.load(share_id) is None


def test_a_broken_record_or_a_lost_photo_opens_nothing(tmp_path):
    store = ShareStore(tmp_path / "s", max_bytes=10_000)
    broken = store.save(_photo(tmp_path, "a.png", 10, b"a"), _shared())
    (store.root / RECORDS / f"{broken}.json").write_text("{not json")
    lost = store.save(_photo(tmp_path, "b.png", 10, b"b"), _shared())
    record = json.loads((store.root / RECORDS / f"{lost}.json").read_text())
    (store.root / PHOTOS / record["photo"]).unlink()
    assert store.load(broken) is None and store.load(lost) is None


def test_the_budget_drops_the_least_recently_used_links_and_their_photos(tmp_path):
    store = ShareStore(tmp_path / "s", max_bytes=10_000)
    ids = [store.save(_photo(tmp_path, f"{n}.jpg", 1000, bytes([n])), _shared()) for n in range(3)]
    record = (store.root / RECORDS / f"{ids[0]}.json").stat().st_size
    store.max_bytes = 3 * (1000 + record) + 500  # room for three links, not four
    for n, share_id in enumerate(ids):  # shared 30, 20 and 10 minutes ago
        _age(store.root / RECORDS / f"{share_id}.json", 1800 - 600 * n)
    assert store.load(ids[0]) is not None  # opening the oldest makes it the most recently used
    fourth = store.save(_photo(tmp_path, "3.jpg", 1000, b"\x03"), _shared())
    assert store.load(ids[1]) is None  # the least recently used went ...
    assert all(store.load(i) is not None for i in (ids[0], ids[2], fourth))  # ... and only it
    photos = sorted(p.name for p in (store.root / PHOTOS).iterdir())
    assert len(photos) == 3  # its photo too (no other link named it)
    used = sum(p.stat().st_size for d in (PHOTOS, RECORDS) for p in (store.root / d).iterdir())
    assert used <= store.max_bytes


def test_a_photo_still_named_by_another_link_stays(tmp_path):
    store = ShareStore(tmp_path / "s", max_bytes=10_000)
    photo = _photo(tmp_path, "same.jpg", 1000)
    old = store.save(photo, _shared())
    record = (store.root / RECORDS / f"{old}.json").stat().st_size
    store.max_bytes = 2 * 1000 + 2 * record + record // 2  # two photos and two links fit, not three links
    _age(store.root / RECORDS / f"{old}.json", 600)
    kept = store.save(photo, _shared(threshold=0.9))
    store.save(_photo(tmp_path, "other.jpg", 1000, b"o"), _shared())
    assert store.load(old) is None and store.load(kept) is not None  # the shared photo stayed for `kept`


def test_what_cannot_be_shared_says_why(tmp_path):
    store = ShareStore(tmp_path / "s", max_bytes=500)
    with pytest.raises(ShareError, match="no longer on the server"):
        store.save(tmp_path / "gone.jpg", _shared())
    with pytest.raises(ShareError, match="larger than this server keeps"):
        store.save(_photo(tmp_path, "big.jpg", 1000), _shared())


def test_names_and_settings():
    assert safe_name("../../etc/pass wd.jpg") == "pass_wd.jpg" and safe_name("..") == "photo"
    settings = load_settings(["--share-dir", "/data/shares", "--share-max-gb", "0.5"], {})
    assert (settings.share_dir, settings.share_max_gb) == ("/data/shares", 0.5)
    assert load_settings([], {"RFDETR_DEMO_SHARE_DIR": "/x"}).share_dir == "/x"
    with pytest.raises(ValueError, match="share-max-gb"):
        load_settings(["--share-max-gb", "-1"], {})
