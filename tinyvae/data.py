"""Datasets: every image a row of gray values in [0, 1], ready for a Bernoulli or Gaussian decoder.

    ds = load_dataset("digits")          # 1500 train / 297 test 8x8 digits, offline
    ds.x_train.shape, ds.image_shape     # (1500, 64), (8, 8)

Sources (``load_dataset(name_or_path)``):

    "digits"          scikit-learn's bundled 8x8 digits (1797 images, gray levels 0..16), scaled
                      by 1/16. The split is fixed: a permutation drawn from default_rng(0), the
                      first 1500 images train, the other 297 test. Offline; the default.
    "mnist"           the four IDX files of MNIST (LeCun, Cortes & Burges) or Fashion-MNIST
    "fashion-mnist"   (Xiao, Rasul & Vollgraf 2017), 60000 train / 10000 test 28x28 images.
                      Looked for in $TINYVAE_DATA/<name>, ~/.cache/tinyvae/<name>
                      and, for fashion-mnist, /usr/share/datasets/fashion-mnist (Debian's
                      package dataset-fashion-mnist); otherwise downloaded (see ``download``).
    a directory       holding the four IDX files, gzipped or not.
    a .npy / .npz     an image array, uint8 0..255 or floats in [0, 1], shaped (n, h, w) or
                      (n, d) (shown as sqrt(d) x sqrt(d) images when d is a square). An .npz
                      may hold x_train, x_test (and y_train, y_test); a single array (or x, y)
                      is split in order: the last ``test_fraction`` (10%) of the rows are the
                      test set, no shuffling. Loaded without pickle.

Binarization (``binarize=``): the Bernoulli decoder models binary pixels, so gray values p are
often replaced by draws x ~ Bernoulli(p): "static" draws once (seeded, so every run sees the
same binary images); "dynamic" keeps the gray values and the training loop draws afresh every
epoch with :func:`binarize_batch` -- a cheap regulariser that avoids overfitting one draw.

Bad input of any kind raises :class:`tinyvae.errors.TinyVAEError`, one line saying what is
wrong and what to do.
"""
import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import TinyVAEError, scale_advice

NAMED = ("digits", "mnist", "fashion-mnist")
ALIASES = {"digits": "digits", "mnist": "mnist", "fashion-mnist": "fashion-mnist",
           "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}
BINARIZE = (None, "static", "dynamic")

DIGITS_N_TRAIN = 1500       # of 1797; the remaining 297 are the test set
DIGITS_SPLIT_SEED = 0       # the split never depends on load_dataset's seed

# The four files of an IDX dataset, by role: (stem, ndim). Also accepted: the stem + ".gz", and
# the spelling with a dot (train-images.idx3-ubyte) that some copies of MNIST use.
IDX_FILES = {"train_images": ("train-images-idx3-ubyte", 3), "train_labels": ("train-labels-idx1-ubyte", 1),
             "test_images": ("t10k-images-idx3-ubyte", 3), "test_labels": ("t10k-labels-idx1-ubyte", 1)}

# Where the gzipped IDX files are downloaded from (tried in order) and what they must be:
# file -> (size in bytes, SHA-256 of the .gz file as served).
#   MNIST: the sizes and hashes that tensorflow/datasets pins in url_checksums/mnist.txt (the
#   same files are on both mirrors; their MD5s are the ones torchvision checks).
#   Fashion-MNIST: tensorflow/datasets url_checksums/fashion_mnist.txt, checked against the
#   real files: Debian's copies are upstream's bytes with the gzip header normalised (file name
#   dropped, time stamp set), and restoring the header gives exactly these sizes and hashes
#   and the MD5s in the Fashion-MNIST README (tests/test_data.py repeats the check).
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
}
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
}
SYSTEM_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}
DOWNLOAD_TIMEOUT = 30       # seconds without data before a download gives up


@dataclass(repr=False)
class Dataset:
    """Train and test images as rows of gray values (or bits) in [0, 1].

    x_train, x_test   (n, d) float32 arrays, d = prod(image_shape)
    y_train, y_test   (n,) int64 labels, or None when the source has none
    image_shape       (h, w): how a row reshapes into a picture
    name              "digits", "mnist", "fashion-mnist", or the file or directory name
    binarize          None | "static" (x_* hold Bernoulli draws) | "dynamic" (the training
                      loop should draw x ~ Bernoulli(x_*) afresh each epoch: binarize_batch)
    """
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple
    name: str
    binarize: str = None

    @property
    def input_dim(self):
        """D, the width of a row: the models' input_dim."""
        return self.x_train.shape[1]

    def __repr__(self):
        labels = "labelled" if self.y_train is not None else "unlabelled"
        return (f"Dataset({self.name!r}: {self.x_train.shape[0]} train / {self.x_test.shape[0]} test "
                f"{'x'.join(map(str, self.image_shape))} images, {labels}, binarize={self.binarize!r})")


def load_dataset(name_or_path="digits", binarize=None, seed=0, data_dir=None, download=True,
                 base_url=None, test_fraction=0.1, progress=True):
    """Load a dataset by name ("digits", "mnist", "fashion-mnist") or path: a folder of IDX files,
    or a .npy/.npz array (see ``help(tinyvae.data)`` for the forms and where files are looked for).

    Returns a :class:`Dataset`: ``x_train``, ``x_test`` (n, D) float32 in [0, 1], ``y_train``,
    ``y_test`` (labels or None), ``image_shape``, ``name``, ``binarize``.

    binarize        None (or "none") | "static" (Bernoulli draws from default_rng(seed), once) | "dynamic"
                    (only recorded in ``ds.binarize``: pass ``binarize="dynamic"`` to ``fit`` too,
                    which draws the bits; ``tinyvae train --binarize dynamic`` does both)
    seed            seeds the static binarization only; splits never depend on it
    data_dir        look in data_dir/<name> and download there instead of $TINYVAE_DATA/<name>
                    (mnist, fashion-mnist)
    download        False: never touch the network (a missing dataset is an error)
    base_url        a mirror to download from instead of the built-in ones (the files must
                    still match the SHA-256 table)
    test_fraction   the share of an unsplit .npy/.npz array kept, from the end, for testing
    progress        show a progress bar while downloading (on a terminal)
    """
    if binarize == "none":                       # as fit and the command line spell it
        binarize = None
    if binarize not in BINARIZE:
        raise TinyVAEError(f"binarize must be None, 'none', 'static' or 'dynamic', got {binarize!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TinyVAEError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TinyVAEError(f"dataset must be a name or a path, got {name_or_path!r}")
    key = name_or_path.strip().lower() if isinstance(name_or_path, str) else None
    if key in ALIASES:                  # a name always means the named dataset (./mnist is a path)
        name = ALIASES[key]
        if name == "digits":
            ds = _load_digits()
        else:
            ds = _load_named_idx(name, data_dir, download, base_url, progress)
    else:
        ds = _load_path(os.fspath(name_or_path), test_fraction)
    if binarize == "static":
        rng = np.random.default_rng(seed)
        ds.x_train = binarize_batch(ds.x_train, rng, out=np.empty_like(ds.x_train))
        ds.x_test = binarize_batch(ds.x_test, rng, out=np.empty_like(ds.x_test))
    ds.binarize = binarize
    return ds


def as_generator(rng, name="rng"):
    """``rng`` itself if it is a NumPy Generator; ``np.random.default_rng(rng)`` for an integer
    seed >= 0; otherwise a TinyVAEError."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0:
        raise TinyVAEError(f"{name} must be a NumPy Generator (np.random.default_rng(seed)) or a "
                           f"non-negative integer seed, got {rng!r}")
    return np.random.default_rng(int(rng))


def binarize_batch(x, rng, out=None, check=True):
    """One draw x_b ~ Bernoulli(x) per pixel: x_b = 1 where u < x, u ~ Uniform[0, 1), else 0.

    P(u < p) = p, so each bit has mean p. x: (N, D) float32/float64 in [0, 1]; rng: a NumPy
    Generator or an integer seed; out: an optional float array of x's shape and dtype, not
    overlapping x (the uniform draws are written into it first). Returns out (or a new array)
    holding 0.0 / 1.0. Values outside [0, 1] (8-bit images not yet divided by 255, say) or NaN
    are refused; ``check=False`` skips that look, for a caller that checked x once already
    (the training loop, per minibatch)."""
    rng = as_generator(rng)
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if check and x.size and not (np.all(x >= 0) and np.all(x <= 1)):   # NaN fails both
        raise TinyVAEError(f"binarize_batch draws bits with probabilities x, which must lie in [0, 1]; x has "
                           f"values in [{np.nanmin(x):g}, {np.nanmax(x):g}]"
                           f"{' and NaN' if np.isnan(x).any() else ''}: "
                           + ("drop or replace the NaN values first" if np.isnan(x).any() else
                              f"{scale_advice(float(np.nanmin(x)), float(np.nanmax(x)))} first"))
    if out is None:
        out = np.empty_like(x)
    elif out.shape != x.shape or out.dtype != x.dtype or np.shares_memory(out, x):
        raise TinyVAEError("binarize_batch: out must be a separate array of x's shape and dtype "
                           f"(x: {x.shape} {x.dtype}, out: {out.shape} {out.dtype})")
    rng.random(out=out, dtype=out.dtype)        # u ~ U[0, 1)
    np.less(out, x, out=out)                    # u < p, as 1.0 / 0.0
    return out


# --- digits ------------------------------------------------------------------------------

def _digits_file():
    """The 8x8 digits as scikit-learn ships them, (1797, 65): 64 gray levels 0..16 and the
    label; None if that file is not where scikit-learn keeps it."""
    import importlib.util
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "datasets", "data", "digits.csv.gz")
        try:
            with gzip.open(path, "rt") as f:
                table = np.loadtxt(f, delimiter=",")
        except (OSError, ValueError, EOFError):
            continue
        if table.shape == (1797, 65):
            return table
    return None


def _load_digits():
    # read scikit-learn's file directly: importing sklearn.datasets (and SciPy) costs a second
    # in every command; load_digits reads the same file, and is the fallback
    table = _digits_file()
    if table is not None:
        data, target = table[:, :64], table[:, 64]
    else:
        from .interrupts import defer_sigint
        with defer_sigint() as stop:        # a Ctrl-C inside SciPy's C-extension imports can crash Python
            from sklearn.datasets import load_digits
        if stop.requested:
            raise stop.interrupt()
        digits = load_digits()
        data, target = digits.data, digits.target
    x = (data / 16.0).astype(np.float32)                  # (1797, 64), gray levels 0..16 -> [0, 1]
    y = target.astype(np.int64)
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(x.shape[0])
    tr, te = perm[:DIGITS_N_TRAIN], perm[DIGITS_N_TRAIN:]
    return Dataset(x[tr], y[tr], x[te], y[te], (8, 8), "digits")


# --- IDX files ---------------------------------------------------------------------------

MAX_IDX_BYTES = 1 << 31          # 2 GiB: MNIST's largest file holds 47 MB

IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short (int16)", 0x0C: "int (int32)",
             0x0D: "float (float32)", 0x0E: "double (float64)"}


def read_idx(path):
    """Read an IDX file (gzipped or not) of unsigned bytes into a uint8 array of its shape.

    The format (LeCun's MNIST page): two zero bytes, a type code (0x08 = unsigned byte), the
    number of dimensions k, then k big-endian uint32 sizes, then prod(sizes) bytes, row-major.
    Gzip is recognised by its magic bytes 1f 8b, whatever the file is called. The file is read
    as a stream, the header first: no more than the header promises (plus one byte, to see that
    nothing follows) is ever read or unpacked, so a small gzip file that unpacks to gigabytes
    costs nothing, and no header may promise more than MAX_IDX_BYTES."""
    gzipped = False
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            raw = f.read(4)
            if len(raw) == 4 and raw[:2] == b"\0\0" and raw[2] == 0x08:
                raw += f.read(4 * raw[3])
                if len(raw) == 4 + 4 * raw[3] and raw[3] > 0:
                    promised = math.prod(int(s) for s in np.frombuffer(raw, dtype=">u4", offset=4))
                    if promised > MAX_IDX_BYTES:
                        raise TinyVAEError(f"{path}'s IDX header promises {promised:,} bytes of data, more than "
                                           f"the {MAX_IDX_BYTES:,} tinyvae reads; it is no image dataset of a "
                                           "size tinyvae trains on (or its header is damaged)")
                    raw += f.read(promised + 1)
    except OSError as e:
        if gzipped and not isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise TinyVAEError(f"{path} is a damaged or truncated gzip file ({e}); "
                               "delete it and fetch it again") from None
        raise TinyVAEError(f"cannot read {path}: {e.strerror or e}; check the path and its permissions") from None
    except (EOFError, zlib.error) as e:
        raise TinyVAEError(f"{path} is a damaged or truncated gzip file ({e}); "
                           "delete it and fetch it again") from None
    if len(raw) < 4:
        raise TinyVAEError(f"{path} is truncated: {len(raw)} bytes, too short for an IDX header; "
                           "delete it and fetch it again")
    if raw[0] != 0 or raw[1] != 0:
        raise TinyVAEError(f"{path} is not an IDX file (it starts with bytes {raw[:4].hex(' ')}, "
                           "not 00 00); give the MNIST-format files train-images-idx3-ubyte etc.")
    code, ndim = raw[2], raw[3]
    if code != 0x08:
        kind = IDX_TYPES.get(code, "unknown")
        raise TinyVAEError(f"{path} holds IDX type 0x{code:02x} ({kind}); tinyvae reads unsigned-byte "
                           "(0x08) IDX files as in MNIST: convert the data to uint8 0..255")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise TinyVAEError(f"{path} has a broken IDX header ({ndim} dimensions, {len(raw)} bytes); "
                           "delete it and fetch it again")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape)
    if len(raw) - header != expected:
        holds = (f"the file holds {len(raw) - header}" if len(raw) - header < expected else
                 "more follow")                         # read no further than one byte past the data
        what = "is truncated" if len(raw) - header < expected else "has trailing bytes"
        raise TinyVAEError(f"{path} {what}: its header promises {'x'.join(map(str, shape))} = {expected} "
                           f"bytes of data, {holds}; delete it and fetch it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_files(directory):
    """The four IDX files in ``directory``: (dict role -> path of those found, list of missing stems)."""
    found, missing = {}, []
    for role, (stem, _) in IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        for candidate in (stem + ".gz", stem, dotted + ".gz", dotted):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                found[role] = path
                break
        else:
            missing.append(stem)
    return found, missing


def load_idx_dir(directory, name=None):
    """A Dataset from a directory holding the four IDX files (gzipped or not)."""
    found, missing = find_idx_files(directory)
    if missing:
        raise TinyVAEError(f"{directory} lacks the IDX file(s) {', '.join(s + '[.gz]' for s in missing)}; "
                           "a dataset directory needs train-images, train-labels, t10k-images and t10k-labels")
    arrays = {}
    for role, path in found.items():
        a = read_idx(path)
        ndim = IDX_FILES[role][1]
        if a.ndim != ndim:
            kind = "images (n, rows, cols)" if ndim == 3 else "labels (n,)"
            raise TinyVAEError(f"{path} has {a.ndim} dimensions {a.shape}, but should hold {kind}; "
                               "check that the files are not swapped")
        arrays[role] = a
    for split in ("train", "test"):
        n_img, n_lab = arrays[f"{split}_images"].shape[0], arrays[f"{split}_labels"].shape[0]
        if n_img != n_lab:
            raise TinyVAEError(f"{found[split + '_images']} holds {n_img} images but "
                               f"{found[split + '_labels']} holds {n_lab} labels; the label file "
                               "must belong to the image file (fetch both again)")
        if n_img == 0:
            raise TinyVAEError(f"{found[split + '_images']} holds no images")
    shape_tr, shape_te = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if math.prod(shape_tr) == 0:
        raise TinyVAEError(f"{found['train_images']} holds images of {shape_tr[0]}x{shape_tr[1]} pixels; "
                           "fetch the files again")
    if shape_tr != shape_te:
        raise TinyVAEError(f"train images are {shape_tr[0]}x{shape_tr[1]} but test images "
                           f"{shape_te[0]}x{shape_te[1]} in {directory}; both must come from one dataset")

    def rows(images):                                   # (n, h, w) uint8 -> (n, h*w) float32 in [0, 1]
        return np.divide(images.reshape(images.shape[0], -1), np.float32(255), dtype=np.float32)

    name = name or os.path.basename(os.path.normpath(directory))
    return Dataset(rows(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
                   rows(arrays["test_images"]), arrays["test_labels"].astype(np.int64),
                   tuple(shape_tr), name)


# --- mnist / fashion-mnist: search, then download ----------------------------------------

def _data_root(data_dir):
    """The folder whose <name> subfolders hold the named datasets: data_dir, else $TINYVAE_DATA."""
    return data_dir if data_dir is not None else os.environ.get("TINYVAE_DATA") or None


def search_dirs(name, data_dir=None):
    """Where ``name`` is looked for, in order: (label for messages, directory)."""
    dirs = []
    root = _data_root(data_dir)
    label = "data_dir" if data_dir is not None else "$TINYVAE_DATA"
    if root:          # <root>/<name> only: files in <root> itself could be either dataset
        dirs.append((f"{label}/{name}", os.path.join(root, name)))
    dirs.append((f"~/.cache/tinyvae/{name}", os.path.join(os.path.expanduser("~"), ".cache", "tinyvae", name)))
    dirs += [(d, d) for d in SYSTEM_DIRS.get(name, ())]
    return dirs


def download_dir(name, data_dir=None):
    """Where downloads of ``name`` go: <data_dir or $TINYVAE_DATA>/<name>, else ~/.cache/tinyvae/<name>."""
    root = _data_root(data_dir)
    if root:
        return os.path.join(root, name)
    return os.path.join(os.path.expanduser("~"), ".cache", "tinyvae", name)


def _load_named_idx(name, data_dir, download, base_url, progress):
    dirs = search_dirs(name, data_dir)
    root = _data_root(data_dir)
    loose = bool(root) and os.path.isdir(root) and not find_idx_files(root)[1]     # files in the root itself
    for _, d in dirs:
        if os.path.isdir(d) and not find_idx_files(d)[1]:
            if loose and d != os.path.join(root, name):
                warnings.warn(f"{root} itself holds IDX files, which are not used: {name} is loaded from {d}. "
                              f"To use them, move them into {os.path.join(root, name)}", stacklevel=3)
            return load_idx_dir(d, name)
    files = list(CHECKSUMS[name])
    places = "; ".join(f"{label} ({path})" if label != path else path for label, path in dirs)
    if loose:
        raise TinyVAEError(f"{root} itself holds IDX files, but tinyvae looks for {name} in {os.path.join(root, name)} "
                           "(files directly in the data folder could be either dataset); move them there")
    if base_url is not None:
        try:
            scheme = urllib.parse.urlsplit(str(base_url)).scheme
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https", "file"):
            raise TinyVAEError(f"base_url {base_url!r} is not an address to download from; give it as "
                               "https://host/path/ (or file:///path/)")
    hint = " or 'sudo apt install dataset-fashion-mnist'" if name == "fashion-mnist" else ""
    if not download:
        raise TinyVAEError(f"{name} not found: it needs {', '.join(files)} (.gz or not), looked in {places}; "
                           f"copy the files into one of those directories{hint}, or allow the download")
    target = download_dir(name, data_dir)
    mirrors = (base_url,) if base_url else MIRRORS[name]
    have = find_idx_files(target)[0] if os.path.isdir(target) else {}   # a partial earlier download
    for role, (stem, _) in IDX_FILES.items():
        fname, dest = stem + ".gz", os.path.join(target, stem + ".gz")
        if role in have:
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + fname
            try:
                download_file(url, dest, *CHECKSUMS[name][fname], progress=progress)
                break
            except TinyVAEError:
                raise
            except (OSError, http.client.HTTPException) as e:       # URLError is an OSError
                reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else \
                    getattr(e, "reason", None) or e
                errors.append(f"{url}: {reason}")
        else:
            raise TinyVAEError(f"{name} not found and could not be downloaded ({'; '.join(errors)}): it needs "
                               f"{', '.join(files)} (.gz or not), looked in {places}; copy the files into one "
                               f"of those directories{hint}, or retry when online")
    return load_idx_dir(target, name)


def download_file(url, dest, size, sha256, progress=True):
    """Fetch ``url`` into ``dest`` atomically, insisting on ``size`` bytes with SHA-256 ``sha256``.

    The bytes go to a temporary file beside ``dest`` (same file system), are hashed on the way,
    and only a verified file is renamed into place (os.replace is atomic), so ``dest`` is either
    absent or complete. Network failures raise urllib.error.URLError / OSError; wrong bytes raise
    TinyVAEError naming the file and both hashes, and leave nothing behind."""
    from tqdm import tqdm
    directory, fname = os.path.split(dest)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise TinyVAEError(f"cannot create the download directory {directory}: {e.strerror or e}; "
                           "set TINYVAE_DATA to a writable directory") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=directory)
    try:
        digest, n = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, \
                tqdm(total=size, unit="B", unit_scale=True, desc=fname, leave=False,
                     disable=None if progress else True) as bar:
            while True:
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                n += len(chunk)
                if n > size:
                    raise TinyVAEError(f"{fname} from {url} is larger than the expected {size} bytes; "
                                       "the mirror serves a different file: try another mirror (base_url)")
                digest.update(chunk)
                f.write(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise TinyVAEError(f"{fname} from {url} failed its checksum: expected SHA-256 {sha256}, got {actual} "
                               f"({n} bytes); nothing was saved: try again or another mirror (base_url)")
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return dest


# --- arrays: .npy / .npz -----------------------------------------------------------------

def _load_path(path, test_fraction):
    if os.path.isdir(path):
        return load_idx_dir(path)
    lower = path.lower()
    if not os.path.exists(path):
        if lower.endswith((".npy", ".npz")) or os.sep in path or (os.altsep and os.altsep in path):
            raise TinyVAEError(f"no such file or directory: {path}; give a dataset name ({', '.join(NAMED)}), "
                               "a directory of IDX files or a .npy/.npz image array")
        raise TinyVAEError(f"unknown dataset {path!r}: the known names are {', '.join(NAMED)}; "
                           "or give a path to a directory of IDX files or to a .npy/.npz image array")
    if not lower.endswith((".npy", ".npz")):
        raise TinyVAEError(f"cannot load {path}: give a directory of IDX files or a .npy/.npz image array")
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise TinyVAEError(f"cannot read {path}: {e.strerror or e}; check the path and its permissions") from None
    if not magic.startswith((b"\x93NUMPY", b"PK")):       # np.load would call any other file "pickled"
        raise TinyVAEError(f"{path} is not a NumPy file (it starts with {magic!r}, not the .npy or .npz "
                           "signature); save arrays with np.save / np.savez")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise _pickle_error(path) from None
        raise TinyVAEError(f"{path} is not a valid {lower[-4:]} file ({e}); save arrays with np.save / np.savez") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise TinyVAEError(f"cannot read {path}: {e}; save arrays with np.save / np.savez") from None
    except MemoryError:                       # its header claims a shape of terabytes
        raise TinyVAEError(f"{path} claims an array larger than this machine's memory; it is damaged, or too "
                           "large for tinyvae") from None
    if isinstance(loaded, np.ndarray):
        x, y = _images(loaded, path), None
        return _split(x, y, test_fraction, name, path)
    with loaded:
        keys = set(loaded.files)

        def get(key):
            try:
                a = loaded[key]
            except ValueError as e:
                if "pickle" in str(e).lower():
                    raise _pickle_error(f"{path}[{key}]") from None
                raise TinyVAEError(f"{path}[{key}] is not a valid array ({e})") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise TinyVAEError(f"cannot read {path}[{key}]: the archive is damaged or truncated ({e}); "
                                   "save the arrays again with np.savez") from None
            except MemoryError:
                raise TinyVAEError(f"{path}[{key}] claims an array larger than this machine's memory; it is "
                                   "damaged, or too large for tinyvae") from None
            if not isinstance(a, np.ndarray):             # a member that is not an .npy file
                raise TinyVAEError(f"{path}[{key}] is not a NumPy array; save the arrays with np.savez")
            return a

        if "x_train" in keys:
            train = _images(get("x_train"), f"{path}[x_train]")
            y_train = _labels(get("y_train"), train, f"{path}[y_train]") if "y_train" in keys else None
            if "x_test" not in keys:
                return _split(train, y_train, test_fraction, name, path)
            test = _images(get("x_test"), f"{path}[x_test]")
            y_test = _labels(get("y_test"), test, f"{path}[y_test]") if "y_test" in keys else None
            if train[1] != test[1]:
                raise TinyVAEError(f"{path}: x_train images are {train[1]} but x_test images {test[1]}; "
                                   "both must have one image shape")
            if (y_train is None) != (y_test is None):
                raise TinyVAEError(f"{path} has labels for only one split; give both y_train and y_test or neither")
            return Dataset(train[0], y_train, test[0], y_test, train[1], name)
        if "x" in keys:
            x = _images(get("x"), f"{path}[x]")
            y = _labels(get("y"), x, f"{path}[y]") if "y" in keys else None
            return _split(x, y, test_fraction, name, path)
        if len(keys) == 1:
            (key,) = keys
            return _split(_images(get(key), f"{path}[{key}]"), None, test_fraction, name, path)
        raise TinyVAEError(f"{path} holds arrays {', '.join(sorted(keys))}; name them x_train, x_test "
                           "(and y_train, y_test), or x (and y), or save a single array")


def _pickle_error(what):
    return TinyVAEError(f"{what} holds a pickled (object) array, which tinyvae will not unpickle; "
                        "save a numeric array instead: np.save(path, images.astype(np.uint8))")


def _images(a, what):
    """Validate an image array: ((n, d) float32 rows in [0, 1], image_shape)."""
    if a.dtype == object or a.dtype.kind not in "buif":
        raise TinyVAEError(f"{what} has dtype {a.dtype}; give uint8 0..255 or floats in [0, 1]")
    if a.ndim == 4 and a.shape[-1] == 1:                # (n, h, w, 1): one channel, channels last
        a = a[..., 0]
    if a.ndim not in (2, 3) or a.shape[0] == 0 or math.prod(a.shape[1:]) == 0:
        raise TinyVAEError(f"{what} has shape {a.shape}; give images as (n, d) rows or (n, h, w), n >= 1")
    if a.ndim == 3:
        image_shape = tuple(a.shape[1:])
    else:                                               # (n, d) rows: square images if d is a square
        side = math.isqrt(a.shape[1])
        image_shape = (side, side) if side * side == a.shape[1] else (1, a.shape[1])
    a = a.reshape(a.shape[0], -1)
    if a.dtype == np.uint8:
        if a.max() == 1:                                # bits saved as bytes would become 0 and 1/255
            raise TinyVAEError(f"{what} is uint8 with values only 0 and 1, but uint8 images mean 0..255 "
                               "(1 would load as 1/255); save binary images as bool or as floats 0.0/1.0")
        return np.divide(a, np.float32(255), dtype=np.float32), image_shape
    if a.dtype == np.bool_:
        return a.astype(np.float32), image_shape
    if a.dtype.kind in "iu":
        raise TinyVAEError(f"{what} has integer dtype {a.dtype}; images must be uint8 (0..255) or floats in "
                           "[0, 1]: convert with .astype(np.uint8) or divide by the maximum")
    if not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise TinyVAEError(f"{what} contains {bad} NaN or infinite values; clean or drop those images")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise TinyVAEError(f"{what} has values in [{lo:g}, {hi:g}], outside [0, 1]; float images must be "
                           "scaled to [0, 1] (e.g. divide 0..255 data by 255). The loader takes images; "
                           "train on other real-valued data from Python: "
                           "tv.fit(tv.VAE(D, likelihood='gaussian'), x)")
    return a.astype(np.float32), image_shape


def _labels(y, images, what):
    """Validate labels for ``images`` (the (x, image_shape) pair from _images)."""
    n = images[0].shape[0]
    if y.ndim != 1 or y.shape[0] != n or y.dtype.kind not in "iu":
        raise TinyVAEError(f"{what} should be {n} integer labels, one per image, but has shape {y.shape} "
                           f"and dtype {y.dtype}")
    return y.astype(np.int64)


def _split(images, y, test_fraction, name, path):
    """The fixed split of an unsplit array: the last round(n * test_fraction) rows are the test set."""
    x, image_shape = images
    try:
        frac = float(test_fraction)
    except (TypeError, ValueError):
        frac = -1.0
    if not 0 < frac < 1:
        raise TinyVAEError(f"test_fraction must be a number strictly between 0 and 1, got {test_fraction!r}")
    n = x.shape[0]
    n_test = min(max(1, round(n * frac)), n - 1)
    if n < 2:
        raise TinyVAEError(f"{path} holds {n} image(s); a train/test split needs at least 2")
    cut = n - n_test
    return Dataset(x[:cut], None if y is None else y[:cut], x[cut:], None if y is None else y[cut:],
                   image_shape, name)
