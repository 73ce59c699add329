"""Tests for tinyvae.data: the datasets, the IDX reader, verified downloads, binarization.

Every network access goes to a server on 127.0.0.1 that the test starts; a guard makes any
other address fail. $HOME is a fresh temporary directory and $TINYVAE_DATA is unset (conftest's
data_env), so no real cache is touched.
"""
import functools
import gzip
import hashlib
import http.server
import os
import re
import struct
import threading
import urllib.parse
import urllib.request

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyvae as tv
from tinyvae import data
from tinyvae.errors import TinyVAEError

STEMS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"


# --- helpers -----------------------------------------------------------------------------

def idx_bytes(a, type_code=0x08):
    """The IDX encoding of a uint8 array, written out from the format description."""
    a = np.asarray(a, dtype=np.uint8)
    return bytes([0, 0, type_code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def fake_idx_set(n_train=12, n_test=5, h=4, w=3, seed=0):
    """Random images and labels for a small IDX dataset: dict role -> uint8 array."""
    rng = np.random.default_rng(seed)
    return {"train_images": rng.integers(0, 256, (n_train, h, w), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (n_test, h, w), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}


def write_idx_set(directory, arrays, gz=True):
    """Write the four IDX files into ``directory``; returns {file name: bytes written}."""
    os.makedirs(directory, exist_ok=True)
    written = {}
    for role, a in arrays.items():
        raw = idx_bytes(a)
        name = STEMS[role] + (".gz" if gz else "")
        if gz:
            raw = gzip.compress(raw, mtime=0)
        with open(os.path.join(directory, name), "wb") as f:
            f.write(raw)
        written[name] = raw
    return written


def assert_matches(ds, arrays):
    """ds holds ``arrays`` as rows scaled to [0, 1] (expected values computed in float64)."""
    for split in ("train", "test"):
        images = arrays[f"{split}_images"]
        x = getattr(ds, f"x_{split}")
        assert x.dtype == np.float32 and x.shape == (images.shape[0], images.shape[1] * images.shape[2])
        np.testing.assert_allclose(x, images.reshape(len(images), -1) / 255.0, rtol=0, atol=1e-7)
        np.testing.assert_array_equal(getattr(ds, f"y_{split}"), arrays[f"{split}_labels"].astype(int))
    assert ds.image_shape == arrays["train_images"].shape[1:]


def sha256(raw):
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture(autouse=True)
def isolated(data_env, monkeypatch):
    """conftest's data_env (fresh $HOME, no $TINYVAE_DATA) and, stricter here, no proxies and
    any address but 127.0.0.1 an assertion error. Returns $HOME."""
    home = data_env
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        host = urllib.parse.urlsplit(url if isinstance(url, str) else url.full_url).hostname
        assert host == "127.0.0.1", f"test tried to reach {url}"
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 5)
    return home


def test_every_test_runs_with_a_controlled_data_environment(data_env):
    """conftest's autouse data_env, which every test file gets: a fresh empty $HOME and no
    $TINYVAE_DATA, so tinyvae looks only in the empty cache there (and Debian's directory)."""
    assert os.path.expanduser("~") == str(data_env) and "TINYVAE_DATA" not in os.environ
    assert [d for _, d in data.search_dirs("mnist")] == [str(data_env / ".cache" / "tinyvae" / "mnist")]
    assert [d for _, d in data.search_dirs("fashion-mnist")] == [
        str(data_env / ".cache" / "tinyvae" / "fashion-mnist"), DEBIAN_FASHION]
    assert os.listdir(data_env) == []


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A static file server on 127.0.0.1 (port chosen by the OS): (directory served, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert not thread.is_alive()


# --- digits ------------------------------------------------------------------------------

def test_digits_shapes_range_and_labels():
    ds = tv.load_dataset("digits")
    assert isinstance(ds, tv.Dataset) and ds.name == "digits" and ds.binarize is None
    assert ds.x_train.shape == (1500, 64) and ds.x_test.shape == (297, 64)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.image_shape == (8, 8) and ds.input_dim == 64
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_array_equal(x * 16, np.round(x * 16))   # gray levels 0..16, scaled by 1/16
    assert set(np.unique(ds.y_train)) == set(range(10)) and set(np.unique(ds.y_test)) <= set(range(10))
    assert ds.y_train.shape == (1500,) and ds.y_test.shape == (297,)


def test_digits_split_is_a_fixed_partition_of_sklearns_digits():
    from sklearn.datasets import load_digits
    a, b = tv.load_dataset("digits"), tv.load_dataset("digits", seed=7)   # seed: binarization only
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    # train + test is exactly the bundled set: same rows with the same labels, each used once
    digits = load_digits()
    full = np.column_stack([digits.data / 16.0, digits.target])
    ours = np.column_stack([np.vstack([a.x_train, a.x_test]).astype(np.float64),
                            np.concatenate([a.y_train, a.y_test])])
    assert ours.shape == full.shape

    def sort_rows(m):
        return m[np.lexsort(m.T[::-1])]

    np.testing.assert_array_equal(sort_rows(ours), sort_rows(full))
    assert not np.array_equal(a.y_train[:100], digits.target[:100])      # shuffled, not in file order


# --- IDX files ---------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory_round_trip(tmp_path, gz):
    arrays = fake_idx_set()
    write_idx_set(tmp_path / "mine", arrays, gz=gz)
    ds = tv.load_dataset(tmp_path / "mine")
    assert ds.name == "mine" and ds.image_shape == (4, 3)
    assert_matches(ds, arrays)


def test_idx_files_with_dotted_names(tmp_path):
    """Some MNIST copies spell the files train-images.idx3-ubyte etc."""
    arrays = fake_idx_set(seed=3)
    d = tmp_path / "dotted"
    d.mkdir()
    for role, a in arrays.items():
        (d / STEMS[role].replace("-idx", ".idx")).write_bytes(idx_bytes(a))
    assert_matches(tv.load_dataset(str(d)), arrays)


@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), gz=st.booleans(), seed=st.integers(0, 2**16))
def test_read_idx_round_trip_property(tmp_path_factory, shape, gz, seed):
    a = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    raw = idx_bytes(a)
    path = tmp_path_factory.mktemp("idx") / "x.idx"            # no .gz in the name: found by magic
    path.write_bytes(gzip.compress(raw) if gz else raw)
    b = data.read_idx(path)
    assert b.dtype == np.uint8 and b.shape == tuple(shape)
    np.testing.assert_array_equal(a, b)


# --- bad input: one test per category ----------------------------------------------------

def test_unreadable_idx_file(tmp_path):
    with pytest.raises(TinyVAEError, match="cannot read"):
        data.read_idx(tmp_path)                         # a directory: open() fails
    with pytest.raises(TinyVAEError, match="cannot read"):
        data.read_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_file(tmp_path, gz):
    arrays = fake_idx_set()
    write_idx_set(tmp_path, arrays, gz=False)
    raw = idx_bytes(arrays["train_images"])
    short = gzip.compress(raw)[:-20] if gz else raw[:-7]
    (tmp_path / "train-images-idx3-ubyte").write_bytes(short)
    with pytest.raises(TinyVAEError, match="truncated") as e:
        tv.load_dataset(tmp_path)
    assert "train-images-idx3-ubyte" in str(e.value) and "\n" not in str(e.value)


def test_a_small_gzip_that_unpacks_to_much_more_is_read_no_further_than_its_header_says(tmp_path):
    """An 8 MB .gz of zeros behind a 10x28x28 header had been unpacked whole (16 GB) first."""
    import tracemalloc
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(idx_bytes(np.zeros((10, 28, 28))))
        block = bytes(1 << 20)
        for _ in range(256):                                        # 256 MB more, about 250 KB packed
            f.write(block)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(TinyVAEError, match="trailing bytes: its header promises 10x28x28 = 7840 bytes of data, "
                                               "more follow"):
            data.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 70000, 2000, 2000)))
    with pytest.raises(TinyVAEError, match="promises 280,000,000,000 bytes of data, more than"):
        data.read_idx(path)


def test_an_array_file_claiming_terabytes_is_one_clear_error(tmp_path):
    import io
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 784)})
    (tmp_path / "huge.npy").write_bytes(b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(64))
    with pytest.raises(TinyVAEError, match="claims an array larger than this machine's memory"):
        tv.load_dataset(tmp_path / "huge.npy")
    import zipfile
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("x_train.npy", (tmp_path / "huge.npy").read_bytes())
    with pytest.raises(TinyVAEError, match=r"huge.npz\[x_train\] claims an array larger"):
        tv.load_dataset(tmp_path / "huge.npz")


def test_idx_header_disagrees_with_payload(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(idx_bytes(np.ones((3, 2))) + b"\x00\x00")     # two bytes more than 3x2
    with pytest.raises(TinyVAEError, match="trailing bytes: its header promises 3x2 = 6 bytes"):
        data.read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))                     # 3 dimensions, sizes cut off
    with pytest.raises(TinyVAEError, match="broken IDX header"):
        data.read_idx(path)


def test_wrong_magic(tmp_path):
    arrays = fake_idx_set()
    write_idx_set(tmp_path, arrays, gz=False)
    raw = bytearray(idx_bytes(arrays["test_images"]))
    raw[0:2] = b"\x12\x34"
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes(raw))
    with pytest.raises(TinyVAEError, match="not an IDX file"):
        tv.load_dataset(tmp_path)


def test_wrong_dtype_code(tmp_path):
    path = tmp_path / "floats.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 3)), type_code=0x0D))
    with pytest.raises(TinyVAEError, match=r"type 0x0d \(float"):
        data.read_idx(path)


def test_image_and_label_counts_disagree(tmp_path):
    arrays = fake_idx_set(n_train=12)
    arrays["train_labels"] = arrays["train_labels"][:11]
    write_idx_set(tmp_path, arrays)
    with pytest.raises(TinyVAEError, match="12 images but .* 11 labels"):
        tv.load_dataset(tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_array_with_nan_or_inf(tmp_path, bad):
    x = np.full((10, 4), 0.5)
    x[3, 2] = bad
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(TinyVAEError, match="NaN or infinite"):
        tv.load_dataset(tmp_path / "x.npy")


@pytest.mark.parametrize("shape", [(10,), (3, 4, 5, 2), (0, 4), (5, 0)])
def test_array_of_wrong_dimensionality(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.zeros(shape, dtype=np.uint8))
    with pytest.raises(TinyVAEError, match=r"has shape .*give images as \(n, d\)"):
        tv.load_dataset(tmp_path / "x.npy")


@pytest.mark.parametrize("value", [1.5, -0.1, 255.0])
def test_float_values_outside_unit_interval(tmp_path, value):
    x = np.full((10, 4), 0.25, dtype=np.float32)
    x[-1, -1] = value
    np.savez(tmp_path / "x.npz", x_train=x, x_test=x[:2] * 0)
    with pytest.raises(TinyVAEError, match=r"outside \[0, 1\]"):
        tv.load_dataset(tmp_path / "x.npz")


@pytest.mark.parametrize("h, w", [(0, 0), (4, 0)])
def test_idx_images_without_pixels_are_refused(tmp_path, h, w):
    write_idx_set(tmp_path, fake_idx_set(h=h, w=w))
    with pytest.raises(TinyVAEError, match=f"images of {h}x{w} pixels"):
        tv.load_dataset(tmp_path)


@pytest.mark.parametrize("content", [b"0.1 0.2 0.3\n0.4 0.5 0.6\n", b"", b"\x80\x04N."])
def test_a_file_that_is_not_numpy_is_not_called_pickled(tmp_path, content):
    """A text file (or an empty one, or a raw pickle) named .npy: said to be no NumPy file, not
    a 'pickled (object) array' as np.load's error had it."""
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    with pytest.raises(TinyVAEError, match="is not a NumPy file") as e:
        tv.load_dataset(path)
    assert "pickled" not in str(e.value)


class _Trap:
    """Unpickling this creates a marker file: proof that nothing was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", ["npy", "npz"])
def test_pickled_object_array_is_refused_unopened(tmp_path, suffix):
    marker = tmp_path / "unpickled"
    arr = np.array([_Trap(str(marker)), 1], dtype=object)
    path = tmp_path / f"x.{suffix}"
    if suffix == "npy":
        np.save(path, arr, allow_pickle=True)
    else:
        np.savez(path, x=arr)
    with pytest.raises(TinyVAEError, match="pickled"):
        tv.load_dataset(path)
    assert not marker.exists()


def test_unknown_dataset_name():
    with pytest.raises(TinyVAEError) as e:
        tv.load_dataset("cifar10")
    msg = str(e.value)
    assert "unknown dataset 'cifar10'" in msg and "\n" not in msg
    assert all(n in msg for n in ("digits", "mnist", "fashion-mnist")) and "path" in msg
    with pytest.raises(TinyVAEError, match="no such file"):
        tv.load_dataset("missing/images.npy")


@pytest.mark.parametrize("path", ["/nonexistent/path", "missing/images.npy", "missing.npz"])
def test_a_missing_path_says_what_to_give_instead(path):
    with pytest.raises(TinyVAEError) as e:
        tv.load_dataset(path)
    msg = str(e.value)
    assert msg.startswith(f"no such file or directory: {path}; ") and "\n" not in msg
    assert "digits, mnist, fashion-mnist" in msg and "directory of IDX files" in msg and ".npy/.npz" in msg


def test_missing_files_offline_names_files_and_places(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("TINYVAE_DATA", str(tmp_path / "store"))
    with pytest.raises(TinyVAEError) as e:
        tv.load_dataset("mnist", download=False)
    msg = str(e.value)
    assert "\n" not in msg
    for stem in STEMS.values():
        assert stem + ".gz" in msg
    for place in (tmp_path / "store" / "mnist", tmp_path / "store", isolated / ".cache" / "tinyvae" / "mnist"):
        assert str(place) in msg
    assert "/usr/share" not in msg                      # only fashion-mnist has a system copy


# --- named datasets: search order, aliases -----------------------------------------------

def test_search_order_and_aliases(tmp_path, monkeypatch, isolated):
    store = tmp_path / "store"
    cache_set, root_set, sub_set = fake_idx_set(n_train=7), fake_idx_set(n_train=8), fake_idx_set(n_train=9)
    write_idx_set(isolated / ".cache" / "tinyvae" / "mnist", cache_set)
    assert_matches(tv.load_dataset("mnist", download=False), cache_set)
    monkeypatch.setenv("TINYVAE_DATA", str(store))
    write_idx_set(store, root_set, gz=False)            # files in $TINYVAE_DATA itself could be either
    with pytest.warns(UserWarning, match="itself holds IDX files, which are not used"):   # dataset: not
        assert_matches(tv.load_dataset("MNIST", download=False), cache_set)              # looked at
    write_idx_set(store / "mnist", sub_set)             # $TINYVAE_DATA/mnist comes first
    ds = tv.load_dataset(" Mnist ", download=False)
    assert ds.name == "mnist"
    assert_matches(ds, sub_set)
    write_idx_set(store / "fashion-mnist", cache_set)   # found before /usr/share/datasets
    ds = tv.load_dataset("Fashion_MNIST", download=False)
    assert ds.name == "fashion-mnist"
    assert_matches(ds, cache_set)
    elsewhere = fake_idx_set(n_train=10)
    write_idx_set(tmp_path / "other" / "mnist", elsewhere)         # data_dir replaces $TINYVAE_DATA
    assert_matches(tv.load_dataset("mnist", data_dir=tmp_path / "other", download=False), elsewhere)


# --- downloads from a local server -------------------------------------------------------

def _serve(root, arrays):
    """Put gzipped IDX files in the served directory; the checksum table entries they need."""
    written = write_idx_set(root, arrays)
    return {name: (len(raw), sha256(raw)) for name, raw in written.items()}


def test_download_verifies_and_writes_atomically(server, tmp_path, monkeypatch):
    root, url = server
    arrays = fake_idx_set(n_train=20, n_test=6, h=5, w=5, seed=11)
    table = _serve(root, arrays)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", table)
    monkeypatch.setenv("TINYVAE_DATA", str(tmp_path / "store"))
    ds = tv.load_dataset("mnist", base_url=url, progress=False)
    assert_matches(ds, arrays)
    target = tmp_path / "store" / "mnist"
    assert sorted(os.listdir(target)) == sorted(table)              # no temporary files left
    for name in table:
        assert (target / name).read_bytes() == (root / name).read_bytes()
    for name in table:                                              # now served from the cache
        (root / name).unlink()
    assert_matches(tv.load_dataset("mnist", download=False), arrays)


def test_download_with_wrong_checksum_leaves_nothing(server, tmp_path, monkeypatch):
    root, url = server
    arrays = fake_idx_set(seed=5)
    table = _serve(root, arrays)
    good = "train-images-idx3-ubyte.gz"
    real = dict(data.CHECKSUMS["mnist"])
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {name: (table[name][0], real[name][1]) for name in table})
    target = tmp_path / "store" / "mnist"
    target.mkdir(parents=True)
    (target / good).write_bytes((root / good).read_bytes())         # already in the cache
    before = os.stat(target / good)
    monkeypatch.setenv("TINYVAE_DATA", str(tmp_path / "store"))
    with pytest.raises(TinyVAEError) as e:
        tv.load_dataset("mnist", base_url=url, progress=False)
    msg = str(e.value)
    bad = "train-labels-idx1-ubyte.gz"                               # the first file to download
    assert bad in msg and real[bad][1] in msg and table[bad][1] in msg and "\n" not in msg
    assert os.listdir(target) == [good]                             # no partial or temporary file
    after = os.stat(target / good)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (target / good).read_bytes() == (root / good).read_bytes()


def test_download_larger_than_expected_is_cut_off(server, tmp_path, monkeypatch):
    root, url = server
    table = _serve(root, fake_idx_set(seed=6))
    name = "t10k-labels-idx1-ubyte.gz"
    table[name] = (table[name][0] - 1, table[name][1])
    monkeypatch.setitem(data.CHECKSUMS, "mnist", table)
    monkeypatch.setenv("TINYVAE_DATA", str(tmp_path / "store"))
    with pytest.raises(TinyVAEError, match=f"{name} .* larger than the expected"):
        tv.load_dataset("mnist", base_url=url, progress=False)
    assert name not in os.listdir(tmp_path / "store" / "mnist")
    assert not [f for f in os.listdir(tmp_path / "store" / "mnist") if f.endswith(".part")]


def test_download_failure_is_a_clear_error(server, tmp_path, monkeypatch):
    root, url = server                                  # the server has none of the files: 404
    monkeypatch.setenv("TINYVAE_DATA", str(tmp_path / "store"))
    with pytest.raises(TinyVAEError) as e:
        tv.load_dataset("mnist", base_url=url, progress=False)
    msg = str(e.value)
    assert "could not be downloaded" in msg and "HTTP 404" in msg and str(tmp_path / "store" / "mnist") in msg
    assert all(stem + ".gz" in msg for stem in STEMS.values())
    assert os.listdir(tmp_path / "store" / "mnist") == []


# --- the real Fashion-MNIST (Debian's dataset-fashion-mnist, installed by .ci/run) --------

# Debian's files are upstream's deflate streams with the gzip header normalised by
# strip-nondeterminism (no file name, time stamp of the package). Upstream's header: FLG.FNAME
# set, these MTIMEs (found by searching for the header whose MD5 matches upstream's), XFL 0, OS 3.
UPSTREAM_MTIME = {"train-images-idx3-ubyte.gz": 1504176606, "train-labels-idx1-ubyte.gz": 1504176606,
                  "t10k-images-idx3-ubyte.gz": 1504176627, "t10k-labels-idx1-ubyte.gz": 1504176627}
# The MD5s published in the Fashion-MNIST README (a source independent of our SHA-256 table).
UPSTREAM_MD5 = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}


def upstream_bytes(raw, name):
    """The file as upstream serves it: Debian's gzip member with the original header restored."""
    if raw[3] & 0x08:                                   # still has a file name: unchanged
        return raw
    assert raw[:4] == b"\x1f\x8b\x08\x00", "unexpected gzip header"
    header = b"\x1f\x8b\x08\x08" + struct.pack("<I", UPSTREAM_MTIME[name]) + b"\x00\x03"
    return header + name[:-3].encode() + b"\x00" + raw[10:]


@pytest.mark.skipif(not os.path.exists(os.path.join(DEBIAN_FASHION, "t10k-labels-idx1-ubyte.gz")),
                    reason="Debian's dataset-fashion-mnist is not installed (apt install dataset-fashion-mnist)")
def test_real_fashion_mnist_and_checksum_table():
    for name, (size, digest) in data.CHECKSUMS["fashion-mnist"].items():
        raw = upstream_bytes(open(os.path.join(DEBIAN_FASHION, name), "rb").read(), name)
        assert hashlib.md5(raw).hexdigest() == UPSTREAM_MD5[name]
        assert (len(raw), sha256(raw)) == (size, digest)
    ds = tv.load_dataset("fashion-mnist", download=False)
    assert ds.name == "fashion-mnist" and ds.image_shape == (28, 28)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.float32 and ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_train), [6000] * 10)     # balanced classes
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
    # content: the first test labels (ankle boot, pullover, trouser, trouser, shirt, ...) and
    # the mean grey level of the training images, 0.286040 (checked against Debian's files)
    np.testing.assert_array_equal(ds.y_test[:10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
    assert ds.x_train.mean(dtype=np.float64) == pytest.approx(0.28604, abs=1e-5)
    # pairing: each class's mean grey level straight from the IDX bytes (gzip and numpy, not
    # tinyvae) equals the loader's. The classes differ a lot (train: sandals 0.137, trousers
    # 0.223, pullovers 0.377, coats 0.385) and labels shuffled apart from their images pull
    # every class to about 0.286, so a mispairing moves some class by far more than 1e-5.
    for split, stem in (("train", "train"), ("test", "t10k")):
        def raw(kind, header):
            with gzip.open(os.path.join(DEBIAN_FASHION, f"{stem}-{kind}.gz")) as f:
                return np.frombuffer(f.read(), dtype=np.uint8, offset=header)
        images, labels = raw("images-idx3-ubyte", 16).reshape(-1, 784), raw("labels-idx1-ubyte", 8)
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        np.testing.assert_array_equal(y, labels)
        expected = np.array([images[labels == c].mean(dtype=np.float64) / 255 for c in range(10)])
        got = np.array([x[y == c].mean(dtype=np.float64) for c in range(10)])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=split)
        assert expected[8] - expected[1] > 0.1 and np.argmin(expected) == 5   # bags vs trousers; sandals


# --- .npy / .npz arrays ------------------------------------------------------------------

def test_npy_uint8_split_last_tenth(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (50, 28 * 28), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", x)
    ds = tv.load_dataset(str(tmp_path / "faces.npy"))
    assert ds.name == "faces" and ds.image_shape == (28, 28) and ds.y_train is None and ds.y_test is None
    assert ds.x_train.shape == (45, 784) and ds.x_test.shape == (5, 784)
    np.testing.assert_allclose(ds.x_test, x[45:] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(ds.x_train, x[:45] / 255.0, rtol=0, atol=1e-7)


@pytest.mark.parametrize("n, fraction, n_test", [(19, 0.1, 2), (7, 0.5, 4), (29, 0.25, 7)])
def test_the_test_split_is_rounded_not_truncated(tmp_path, n, fraction, n_test):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(size=(n, 4)))
    ds = tv.load_dataset(tmp_path / "x.npy", test_fraction=fraction)
    assert (len(ds.x_train), len(ds.x_test)) == (n - n_test, n_test)


def test_npz_with_splits_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    xtr, xte = rng.random((20, 6, 5)), rng.random((4, 6, 5))
    ytr, yte = rng.integers(0, 3, 20), rng.integers(0, 3, 4)
    np.savez(tmp_path / "d.npz", x_train=xtr, x_test=xte, y_train=ytr, y_test=yte)
    ds = tv.load_dataset(tmp_path / "d.npz", test_fraction=0.5)          # ignored: already split
    assert ds.image_shape == (6, 5) and ds.x_train.shape == (20, 30) and ds.x_test.shape == (4, 30)
    np.testing.assert_allclose(ds.x_train, xtr.reshape(20, -1), rtol=1e-7)
    np.testing.assert_array_equal(ds.y_test, yte)
    np.savez(tmp_path / "xy.npz", x=xtr, y=ytr)
    ds = tv.load_dataset(tmp_path / "xy.npz", test_fraction=0.25)
    assert ds.x_test.shape == (5, 30)
    np.testing.assert_array_equal(ds.y_test, ytr[15:])
    with pytest.raises(TinyVAEError, match="test_fraction"):
        tv.load_dataset(tmp_path / "xy.npz", test_fraction=1.0)
    np.savez(tmp_path / "bad.npz", x=xtr, y=ytr[:-1])
    with pytest.raises(TinyVAEError, match="one per image"):
        tv.load_dataset(tmp_path / "bad.npz")


# --- binarization ------------------------------------------------------------------------

def test_static_binarization_is_seeded_bernoulli():
    gray = tv.load_dataset("digits")
    a = tv.load_dataset("digits", binarize="static", seed=3)
    b = tv.load_dataset("digits", binarize="static", seed=3)
    c = tv.load_dataset("digits", binarize="static", seed=4)
    assert a.binarize == "static" and a.x_train.dtype == np.float32
    assert set(np.unique(a.x_train)) == {0.0, 1.0} and set(np.unique(a.x_test)) == {0.0, 1.0}
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    np.testing.assert_array_equal(a.y_train, gray.y_train)
    assert np.all(a.x_train[gray.x_train == 0] == 0) and np.all(a.x_train[gray.x_train == 1] == 1)
    # E[bit] = p: over 96000 pixels the means agree to well within 0.01 (sd ~ 0.0015)
    assert abs(a.x_train.mean() - gray.x_train.mean()) < 0.01
    with pytest.raises(TinyVAEError, match="binarize"):
        tv.load_dataset("digits", binarize="yes")


def test_dynamic_binarization_keeps_gray_values():
    gray = tv.load_dataset("digits")
    ds = tv.load_dataset("digits", binarize="dynamic")
    assert ds.binarize == "dynamic"
    np.testing.assert_array_equal(ds.x_train, gray.x_train)
    rng = np.random.default_rng(0)
    out = np.empty_like(ds.x_train)
    first = tv.binarize_batch(ds.x_train, rng, out=out).copy()
    second = tv.binarize_batch(ds.x_train, rng, out=out)
    assert second is out and out.dtype == np.float32
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)            # a fresh draw each call
    assert abs(first.mean() - ds.x_train.mean()) < 0.01
    with pytest.raises(TinyVAEError, match="separate array"):
        tv.binarize_batch(ds.x_train, rng, out=ds.x_train)


@given(p=st.lists(st.sampled_from([0.0, 0.3, 1.0]), min_size=1, max_size=40), seed=st.integers(0, 1000))
def test_binarize_batch_keeps_certain_pixels(p, seed):
    x = np.array(p, dtype=np.float64)[None, :]
    b = data.binarize_batch(x, np.random.default_rng(seed))
    assert b.dtype == np.float64 and b.shape == x.shape
    assert np.all(b[x == 0] == 0) and np.all(b[x == 1] == 1) and np.all((b == 0) | (b == 1))


def test_npz_splits_with_different_image_shapes_are_refused(tmp_path):
    """(4, 16) and (8, 8) images flatten to the same 64 features; the test set used to be
    drawn as 4 x 16 pictures without a word."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mism.npz", x_train=rng.random((10, 4, 16)), x_test=rng.random((3, 8, 8)))
    with pytest.raises(TinyVAEError, match=r"\(4, 16\).*\(8, 8\)"):
        tv.load_dataset(tmp_path / "mism.npz")


@pytest.mark.parametrize("x", [np.full((2, 3), 200, np.uint8), np.full((2, 3), 17.0), np.array([[-0.5, 0.5]]),
                               np.array([[np.nan, 0.5]])])
def test_binarize_batch_refuses_what_is_no_probability(x):
    """8-bit images not yet divided by 255 had come back as all ones, without a word."""
    with pytest.raises(TinyVAEError, match=r"must lie in \[0, 1\].*(divide it by its maximum|rescale it|NaN values)"):
        tv.binarize_batch(x, 0)


def test_uint8_bits_are_not_taken_for_dark_gray_pixels(tmp_path):
    bits = (np.random.default_rng(0).uniform(size=(20, 4, 4)) > 0.5)
    np.save(tmp_path / "bits.npy", bits.astype(np.uint8))
    with pytest.raises(TinyVAEError, match="values only 0 and 1.*save binary images as bool"):
        tv.load_dataset(tmp_path / "bits.npy")
    np.save(tmp_path / "bits.npy", bits)                      # as bool they are 0.0 and 1.0
    assert tv.load_dataset(tmp_path / "bits.npy").x_train.max() == 1.0


def test_binarize_batch_takes_an_integer_seed():
    x = np.full((3, 5), 0.5)
    np.testing.assert_array_equal(tv.binarize_batch(x, 4), tv.binarize_batch(x, np.random.default_rng(4)))
    with pytest.raises(TinyVAEError, match="rng must be"):
        tv.binarize_batch(x, "seed")


def test_a_damaged_npz_or_a_member_that_is_not_an_array_is_a_clear_error(tmp_path):
    import zipfile
    np.savez(tmp_path / "whole.npz", x=np.zeros((10, 4), np.uint8))
    raw = (tmp_path / "whole.npz").read_bytes()
    (tmp_path / "half.npz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(TinyVAEError, match="cannot read"):
        tv.load_dataset(tmp_path / "half.npz")
    with zipfile.ZipFile(tmp_path / "junk.npz", "w") as z:
        z.writestr("x.npy", b"junk")
    with pytest.raises(TinyVAEError, match=r"\[x\] is not a NumPy array"):
        tv.load_dataset(tmp_path / "junk.npz")
    with zipfile.ZipFile(tmp_path / "model.npz", "w") as z:
        z.writestr("format.npy", b"junk")
    with pytest.raises(TinyVAEError, match="not a tinyvae checkpoint .*'format' is not a NumPy array"):
        tv.load(tmp_path / "model.npz")


def test_a_base_url_that_is_not_a_url_is_a_clear_error(tmp_path):
    for bad in ("example.invalid/mnist", "http://[::1"):
        with pytest.raises(TinyVAEError, match="not an address to download from"):
            tv.load_dataset("mnist", data_dir=tmp_path, base_url=bad, progress=False)
    tv.load_dataset("digits", base_url="example.invalid")          # not used, so not looked at


def test_idx_files_directly_in_the_data_folder_are_pointed_at_not_used(tmp_path, monkeypatch, isolated):
    # they could be either dataset (Fashion-MNIST's had been served as 'mnist'): say where they go
    store = tmp_path / "store"
    write_idx_set(store, fake_idx_set(n_train=7))
    monkeypatch.setenv("TINYVAE_DATA", str(store))
    for download in (False, True):                   # refused before any download is tried
        with pytest.raises(TinyVAEError, match="itself holds IDX files, but tinyvae looks for mnist in .*" + re.escape(os.path.join("store", "mnist"))):
            tv.load_dataset("mnist", download=download, progress=False)


def test_idx_files_directly_in_the_data_folder_are_named_when_the_data_come_from_elsewhere(
        tmp_path, monkeypatch, isolated):
    """Loose files in $TINYVAE_DATA had been passed over in silence whenever another place
    (the cache, Debian's package) held the dataset."""
    store = tmp_path / "store"
    write_idx_set(store, fake_idx_set(n_train=7))
    write_idx_set(isolated / ".cache" / "tinyvae" / "mnist", fake_idx_set(n_train=9, seed=1))
    monkeypatch.setenv("TINYVAE_DATA", str(store))
    with pytest.warns(UserWarning, match=r"itself holds IDX files, which are not used: mnist is loaded from .*cache"):
        ds = tv.load_dataset("mnist", download=False, progress=False)
    assert ds.x_train.shape[0] == 9


def test_digits_read_from_scikit_learn_s_file_equal_its_load_digits(monkeypatch):
    """The digits come from the file scikit-learn ships, read without importing sklearn.datasets
    (a second per command); they must be load_digits' arrays, and load_digits the fallback."""
    from sklearn.datasets import load_digits

    from tinyvae import data
    digits = load_digits()
    table = data._digits_file()
    assert table is not None
    np.testing.assert_array_equal(table[:, :64], digits.data)
    np.testing.assert_array_equal(table[:, 64], digits.target)
    fast = data.load_dataset("digits")
    monkeypatch.setattr(data, "_digits_file", lambda: None)
    slow = data.load_dataset("digits")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        assert getattr(fast, name).dtype == getattr(slow, name).dtype
