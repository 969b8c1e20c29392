"""The .swm file seen from Python: bit-exact round trips, and clear errors
for truncated, flipped, future-version and foreign files."""
import hashlib
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import streamwise as sw

from conftest import ROOT, separable


def trained(rng, cls=sw.SCWClassifier, k=3, **kw):
    X, y = separable(rng, n=200, d=6, k=k)
    return cls(**kw).fit(X, y), X, y


def reseal(b):
    """Fix the header CRC and SHA-256 trailer after an edit."""
    b = bytearray(b)
    b[124:128] = struct.pack("<I", zlib.crc32(bytes(b[:124])))
    b[-32:] = hashlib.sha256(bytes(b[:-32])).digest()
    return bytes(b)


@pytest.mark.parametrize("cls,k", [(sw.SCWClassifier, 3),
                                   (sw.PassiveAggressiveClassifier, 2),
                                   (sw.SCWClassifier, 2)])
def test_save_load_predict_bit_exact(rng, tmp_path, cls, k):
    est, X, y = trained(rng, cls, k)
    path = tmp_path / "m.swm"
    est.save(path)
    back = sw.load(path)
    assert type(back) is cls
    assert back.get_params() == est.get_params()
    assert list(back.classes_) == list(est.classes_)
    a, b = est.decision_function(X), back.decision_function(X)
    assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    # both keep learning identically
    est.partial_fit(X[:30], y[:30])
    back.partial_fit(X[:30], y[:30])
    assert est.decision_function(X).tobytes() == \
        back.decision_function(X).tobytes()


def test_regressor_and_golden_rows(rng, tmp_path):
    X = rng.standard_normal((100, 4))
    y = X @ [1, 2, 3, 4.0]
    est = sw.PassiveAggressiveRegressor().fit(X, y)
    path = tmp_path / "r.swm"
    est.save(path, golden=X[:5])
    assert sw.load(path).predict(X).tobytes() == est.predict(X).tobytes()
    assert "5 rows re-scored: bit-identical" in sw.inspect(path)


def test_file_layout_is_as_documented(rng, tmp_path):
    est, _, _ = trained(rng)
    path = tmp_path / "m.swm"
    est.save(path)
    b = path.read_bytes()
    assert b[:8] == b"\x89SWM\r\n\x1a\n"
    major, minor, hdr_len = struct.unpack_from("<HHI", b, 8)
    assert (major, minor, hdr_len) == (1, 0, 128)
    assert struct.unpack_from("<I", b, 124)[0] == zlib.crc32(b[:124])
    assert hashlib.sha256(b[:-32]).digest() == b[-32:]
    n_sec = struct.unpack_from("<I", b, 112)[0]
    types = []
    for i in range(n_sec):
        t, _, off, ln, crc = struct.unpack_from("<IIQQI", b, 128 + 32 * i)
        assert zlib.crc32(b[off:off + ln]) == crc
        types.append(t)
    assert sorted(types) == [1, 2, 3]       # METADATA, MODEL, GOLDEN
    assert not list(tmp_path.glob("*.tmp.*"))   # the temp file was renamed


def test_truncated_files(rng, tmp_path):
    est, _, _ = trained(rng)
    good = tmp_path / "m.swm"
    est.save(good)
    b = good.read_bytes()
    bad = tmp_path / "bad.swm"
    for n in [0, 7, 100, 159, 160, 300, len(b) // 2, len(b) - 1]:
        bad.write_bytes(b[:n])
        with pytest.raises(sw.FormatError) as e:
            sw.load(bad)
        assert str(bad) in str(e.value)
        if n < 160:
            assert "truncated" in str(e.value)


def test_bit_flips(rng, tmp_path):
    est, _, _ = trained(rng)
    good = tmp_path / "m.swm"
    est.save(good)
    b = good.read_bytes()
    bad = tmp_path / "bad.swm"
    for pos in range(0, len(b), max(1, len(b) // 97)):
        flipped = bytearray(b)
        flipped[pos] ^= 0x04
        bad.write_bytes(bytes(flipped))
        with pytest.raises(sw.FormatError):
            sw.load(bad)
    flipped = bytearray(b)
    flipped[len(b) // 2] ^= 1
    bad.write_bytes(bytes(flipped))
    with pytest.raises(sw.FormatError, match="SHA-256 mismatch"):
        sw.load(bad)


def test_future_version_and_foreign_file(rng, tmp_path):
    est, _, _ = trained(rng)
    good = tmp_path / "m.swm"
    est.save(good)
    b = bytearray(good.read_bytes())
    b[8] = 2
    future = tmp_path / "future.swm"
    future.write_bytes(reseal(b))
    with pytest.raises(sw.FormatError,
                       match=r"format 2\.0, this build reads 1\.x: written "
                             r"by a newer streamwise"):
        sw.load(future)
    text = tmp_path / "notes.swm"
    text.write_text("hello " * 100)
    with pytest.raises(sw.FormatError, match="bad magic"):
        sw.load(text)
    with pytest.raises(sw.IOError, match="No such file"):
        sw.load(tmp_path / "missing.swm")


def test_metadata_naming_unknown_class(rng, tmp_path):
    est, _, _ = trained(rng)
    est._model.set_metadata('{"class": "Mystery"}')
    path = tmp_path / "m.swm"
    est._model.save(str(path))
    with pytest.raises(sw.FormatError, match="Mystery"):
        sw.load(path)


def test_inspect_and_cli(rng, tmp_path):
    est, _, _ = trained(rng)
    path = tmp_path / "m.swm"
    est.save(path)
    text = sw.inspect(path)
    for needle in ["format       1.0", "SHA-256 verified", "SCW-I classifier",
                   "classes      3", '"class": "SCWClassifier"',
                   "METADATA", "MODEL", "GOLDEN", "bit-identical"]:
        assert needle in text
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    out = subprocess.run([sys.executable, "-m", "streamwise", "inspect",
                          str(path)], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "SCW-I classifier" in out.stdout
    bad = tmp_path / "bad.swm"
    bad.write_bytes(path.read_bytes()[:-5])
    out = subprocess.run([sys.executable, "-m", "streamwise", "inspect",
                          str(bad)], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "truncated" in out.stderr
    wrapper = os.path.join(ROOT, "build", "bin", "streamwise")
    if os.path.exists(wrapper):
        out = subprocess.run([wrapper, "inspect", str(path)],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "SCW-I classifier" in out.stdout


def test_a_golden_section_of_zero_rows_is_refused_not_a_crash(rng, tmp_path):
    """An 880-byte file whose GOLDEN section claims 0 rows made every
    loader die of a division by zero (SIGFPE)."""
    est, X, y = trained(rng)
    path = tmp_path / "m.swm"
    est.save(path)
    b = bytearray(path.read_bytes())
    n = struct.unpack_from("<I", b, 112)[0]
    for i in range(n):
        e = 128 + 32 * i
        if struct.unpack_from("<I", b, e)[0] == 3:          # GOLDEN
            off, ln = struct.unpack_from("<QQ", b, e + 8)
            struct.pack_into("<Q", b, off + 8, 0)           # rows
            struct.pack_into("<I", b, e + 24,
                             zlib.crc32(bytes(b[off:off + ln])))
    bad = tmp_path / "zero.swm"
    bad.write_bytes(reseal(b))
    with pytest.raises(sw.FormatError, match=r"0 rows x .*\(1\.\.4096 rows"):
        sw.load(bad)
    r = subprocess.run([os.path.join(ROOT, "build", "bin", "sw-serve"),
                        "--inspect", str(bad)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "SW_E_FORMAT" in r.stderr
