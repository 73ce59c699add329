"""Checkpoints: round trips, no pickles, atomic writes, and every kind of bad file refused clearly."""
import json
import os
import zipfile

import numpy as np
import pytest

import tinyvae as tv
from tinyvae import checkpoint
from tinyvae.errors import TinyVAEError


@pytest.fixture(scope="module")
def x():
    return tv.load_dataset("digits").x_train[:200]


def trained_vae(x, epochs=2, **kw):
    vae = tv.VAE(input_dim=64, hidden_dims=(16,), latent_dim=3, **kw)
    tv.fit(vae, x, epochs=epochs, batch_size=64, x_val=x[:50], progress=False)
    return vae


def trained_ae(x):
    ae = tv.Autoencoder(input_dim=64, hidden_dims=(16, 8), code_dim=4, loss="bce", noise_std=0.1,
                        activation="tanh", seed=3)
    tv.fit(ae, x, epochs=2, batch_size=64, optimizer="sgd", lr=0.05, seed=7, progress=False)
    return ae


def assert_same_training_state(a, b):
    ta, tb = a.trainer, b.trainer
    assert (ta.epoch, ta.step, ta.n_steps, ta.seed, ta.batch_size) == (tb.epoch, tb.step, tb.n_steps, tb.seed, tb.batch_size)
    assert ta.history == tb.history and ta.sums == tb.sums
    assert ta.noise_rng.bit_generator.state == tb.noise_rng.bit_generator.state
    assert ta.binarize_rng.bit_generator.state == tb.binarize_rng.bit_generator.state
    sa, sb = ta.optimizer.state_dict(), tb.optimizer.state_dict()
    assert ta.optimizer.name == tb.optimizer.name and ta.optimizer.lr == tb.optimizer.lr
    assert sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------
# round trips

@pytest.mark.parametrize("make", [trained_vae, trained_ae], ids=["vae", "ae"])
def test_round_trip_restores_model_optimizer_and_generators(make, x, tmp_path):
    model = make(x)
    path = model.save(tmp_path / "m.npz")
    back = tv.load(path)
    assert type(back) is type(model) and back.kind == model.kind
    assert back.config == model.config
    assert back.flat.dtype == model.flat.dtype and np.array_equal(back.flat, model.flat)
    for name in model.params:                                # the named views see the loaded values
        assert np.array_equal(back.params[name], model.params[name])
    assert_same_training_state(model, back)
    # continuing from the file gives what continuing in memory gives
    tv.fit(model, x, epochs=1, batch_size=64, progress=False, **({} if model.kind == "vae" else
                                                                 dict(optimizer="sgd", lr=0.05, seed=7)))
    tv.fit(back, x, epochs=1, batch_size=64, progress=False, **({} if back.kind == "vae" else
                                                               dict(optimizer="sgd", lr=0.05, seed=7)))
    assert np.array_equal(model.flat, back.flat)


def test_an_untrained_model_round_trips_without_a_trainer(tmp_path):
    vae = tv.VAE(input_dim=5, hidden_dims=(), latent_dim=2, likelihood="gaussian", learn_sigma2=True,
                 sigma2=0.3, dtype="float64", seed=4)
    back = tv.load(vae.save(tmp_path / "plain.npz"))
    assert back.config == vae.config and np.array_equal(back.flat, vae.flat)
    assert back.flat.dtype == np.float64 and back.sigma2 == pytest.approx(0.3)
    assert getattr(back, "trainer", None) is None


def test_load_takes_a_run_directory_and_save_a_directory(x, tmp_path):
    vae = trained_vae(x, epochs=1)
    run = tmp_path / "run"
    run.mkdir()
    written = vae.save(run)
    assert written == str(run / "model.npz")
    assert np.array_equal(tv.load(run).flat, vae.flat)
    # a name ending in "/" is a directory too, created if needed (not a file named "new")
    assert vae.save(f"{tmp_path / 'new'}/") == str(tmp_path / "new" / "model.npz")
    assert np.array_equal(tv.load(tmp_path / "new").flat, vae.flat)


def test_the_file_is_plain_arrays_readable_without_pickle(x, tmp_path):
    path = trained_vae(x).save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    assert all(a.dtype != object for a in arrays.values())
    assert str(arrays["format"]) == "tinyvae-checkpoint" and str(arrays["kind"]) == "vae"
    assert int(arrays["epoch"]) == 2 and int(arrays["step"]) == 0
    assert json.loads(str(arrays["config"]))["latent_dim"] == 3
    meta = json.loads(str(arrays["trainer"]))
    assert meta["noise_rng"]["bit_generator"] == "PCG64"
    assert arrays["optim.m"].shape == arrays["params"].shape
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask   # like any other new file (not mkstemp's 0600)


# ---------------------------------------------------------------------------------------------
# atomic writes

def test_a_failed_rename_leaves_the_old_checkpoint_and_no_temporary_file(x, tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    vae = trained_vae(x, epochs=1)
    vae.save(path)
    before = path.read_bytes()
    tv.fit(vae, x, epochs=1, batch_size=64, progress=False)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint.os, "replace", broken_replace)
    with pytest.raises(TinyVAEError, match="No space left"):
        vae.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_adds_npz_as_numpy_does_and_load_finds_it_either_way(x, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    vae = trained_vae(x, epochs=1)
    assert vae.save(tmp_path / "out" / "mine") == str(tmp_path / "out" / "mine.npz")
    for name in ("mine", "mine.npz"):
        assert np.array_equal(tv.load(tmp_path / "out" / name).flat, vae.flat)
    assert vae.save("~/models/m.npz") == str(tmp_path / "home" / "models" / "m.npz")   # not ./~/models
    (tmp_path / "old.ckpt").write_bytes((tmp_path / "out" / "mine.npz").read_bytes())   # named by an older release
    assert vae.save(tmp_path / "old.ckpt") == str(tmp_path / "old.ckpt")             # saved where load reads it
    assert not (tmp_path / "old.ckpt.npz").exists()
    assert np.array_equal(tv.load("~/models/m").flat, vae.flat)


POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions; Windows cannot open a folder to fsync it")


@POSIX_ONLY
def test_a_new_checkpoint_keeps_the_permissions_of_the_one_it_replaces(x, tmp_path):
    path = tmp_path / "m.npz"
    vae = trained_vae(x, epochs=1)
    vae.save(path)
    os.chmod(path, 0o600)                                     # the user's own choice
    vae.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(path, 0o640)
    checkpoint.atomic_write(path, lambda f: f.write(b"x"))
    assert os.stat(path).st_mode & 0o777 == 0o640


@POSIX_ONLY
def test_atomic_write_syncs_the_directory_after_the_rename(tmp_path, monkeypatch):
    synced, replaced = [], []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append((os.fstat(fd), bool(replaced)))
        return real_fsync(fd)

    def replace(src, dst):
        replaced.append(dst)
        return real_replace(src, dst)
    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    monkeypatch.setattr(checkpoint.os, "replace", replace)
    checkpoint.atomic_write(tmp_path / "h.csv", lambda f: f.write(b"epoch\n"))
    assert (tmp_path / "h.csv").read_bytes() == b"epoch\n"
    last, after_rename = synced[-1]
    assert os.path.samestat(last, os.stat(tmp_path)) and after_rename    # the folder, after the rename


def test_a_kill_in_the_middle_of_writing_leaves_the_old_checkpoint(x, tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    vae = trained_vae(x, epochs=1)
    vae.save(path)
    before = path.read_bytes()
    real_savez = np.savez

    def interrupted_savez(f, **arrays):            # half an archive, then Ctrl-C
        real_savez(f, **{k: arrays[k] for k in list(arrays)[:3]})
        raise KeyboardInterrupt
    monkeypatch.setattr(checkpoint.np, "savez", interrupted_savez)
    with pytest.raises(KeyboardInterrupt):
        vae.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    monkeypatch.undo()
    assert np.array_equal(tv.load(path).flat, vae.flat)       # the last good save: unchanged since


def test_non_finite_parameters_are_not_saved_over_a_good_checkpoint(x, tmp_path):
    path = tmp_path / "m.npz"
    vae = trained_vae(x, epochs=1)
    vae.save(path)
    before = path.read_bytes()
    vae.flat[3] = np.nan
    with pytest.raises(TinyVAEError, match="NaN"):
        vae.save(path)
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# bad files

@pytest.fixture
def good(x, tmp_path):
    path = trained_vae(x, epochs=1).save(tmp_path / "good.npz")
    with np.load(path) as z:
        return path, {k: z[k] for k in z.files}


def rewrite(tmp_path, arrays, name="bad.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_missing_file_and_a_directory_without_a_checkpoint(tmp_path):
    with pytest.raises(TinyVAEError, match="no such checkpoint"):
        tv.load(tmp_path / "nothing.npz")
    with pytest.raises(TinyVAEError, match="not a tinyvae run directory"):
        tv.load(tmp_path)


def test_truncated_checkpoint(good, tmp_path):
    path, _ = good
    data = open(path, "rb").read()
    for cut in (len(data) // 2, len(data) - 30, 100):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(TinyVAEError, match="damaged or truncated|not an .npz"):
            tv.load(bad)


def test_a_flipped_byte_in_the_parameters_is_caught(good, tmp_path):
    path, arrays = good
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("params.npy")
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF    # inside the stored params
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(TinyVAEError, match="damaged"):                 # the zip's CRC-32 disagrees
        tv.load(bad)


def test_not_an_archive(tmp_path):
    bad = tmp_path / "notes.npz"
    bad.write_text("these are my notes, not a model\n")
    with pytest.raises(TinyVAEError, match="not an .npz"):
        tv.load(bad)
    single = tmp_path / "array.npy"
    np.save(single, np.zeros(5))
    with pytest.raises(TinyVAEError, match="single NumPy array"):
        tv.load(single)


def test_foreign_archives(good, tmp_path):
    _, arrays = good
    with pytest.raises(TinyVAEError, match="not a tinyvae checkpoint"):
        tv.load(rewrite(tmp_path, {"W": np.ones((3, 3)), "b": np.zeros(3)}))
    with pytest.raises(TinyVAEError, match="not a tinyvae checkpoint"):
        tv.load(rewrite(tmp_path, dict(arrays, format=np.array("someone-else"))))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array("tinyvae-checkpoint"), config=np.array([{"a": 1}], dtype=object))
    with pytest.raises(TinyVAEError, match="pickled"):
        tv.load(pickled)


def test_mismatched_and_corrupt_contents(good, tmp_path):
    _, arrays = good
    config = json.loads(str(arrays["config"]))
    wider = json.dumps(dict(config, hidden_dims=[17], decoder_hidden_dims=[17]))
    cases = {
        "params for another config": (dict(arrays, config=np.array(wider)), "corrupt or mismatched.*parameters"),
        "params cut short": (dict(arrays, params=arrays["params"][:-1]), "corrupt or mismatched"),
        "NaN params": (dict(arrays, params=np.full_like(arrays["params"], np.nan)), "NaN"),
        "config not JSON": (dict(arrays, config=np.array("{not json")), "corrupt or mismatched"),
        "config of nonsense": (dict(arrays, config=np.array(json.dumps(dict(config, latent_dim=-2)))),
                               "does not describe"),
        "unknown kind": (dict(arrays, kind=np.array("gan")), "unknown kind"),
        "newer format": (dict(arrays, version=np.array(99)), "newer tinyvae"),
        "no params": ({k: v for k, v in arrays.items() if k != "params"}, "missing"),
        "optimizer of another size": (dict(arrays, **{"optim.m": np.zeros(7)}), "optimizer state"),
        "damaged trainer": (dict(arrays, trainer=np.array(json.dumps({"epoch": 1}))), "training state"),
    }
    for name, (contents, match) in cases.items():
        with pytest.raises(TinyVAEError, match=match):
            tv.load(rewrite(tmp_path, contents, name.replace(" ", "_") + ".npz"))


def test_hand_edited_run_options_and_configs(good, tmp_path):
    """A run that is not a dict, options of the wrong type, absurd sizes, int parameters:
    each one TinyVAEError naming the problem, never an AttributeError or a huge allocation."""
    _, arrays = good
    config = json.loads(str(arrays["config"]))
    run = {"data": "digits", "epochs": 3, "seed": 0, "binarize": "none", "threads": 1, "checkpoint_every": 1}
    huge = json.dumps(dict(config, input_dim=10_000_000, hidden_dims=[1_000_000]))
    cases = {
        "run a list": (dict(arrays, run=np.array(json.dumps([1, 2]))), "run options are list"),
        "epochs a string": (dict(arrays, run=np.array(json.dumps(dict(run, epochs="abc")))),
                            "run option epochs is 'abc' but must be a positive integer"),
        "batch size 0": (dict(arrays, run=np.array(json.dumps(dict(run, batch_size=0)))), "batch_size"),
        "run without its seed": (dict(arrays, run=np.array(json.dumps({"data": "digits", "epochs": 3}))),
                                 "lack seed"),
        "huge config": (dict(arrays, config=np.array(huge)), "limit"),
        "int32 params": (dict(arrays, params=arrays["params"].astype(np.int32)),
                         "parameters are int32 but its config says float32"),
    }
    for name, (contents, match) in cases.items():
        with pytest.raises(TinyVAEError, match=match):
            tv.load(rewrite(tmp_path, contents, name.replace(" ", "_") + ".npz"))
    ok = checkpoint.read(rewrite(tmp_path, dict(arrays, run=np.array(json.dumps(run))), "ok.npz"))
    assert ok.run == run
    # every known run option, given a value of the wrong kind, is named
    for key, (_, must) in checkpoint.RUN_FIELDS.items():
        wrong = "abc" if must != "a string" else 12
        if key in ("seed", "epochs", "latent"):
            wrong = -1
        with pytest.raises(TinyVAEError, match=f"run option {key} is .* but must be"):
            checkpoint.check_run(dict(run, **{key: wrong}), "x.npz")


def test_entries_tinyvae_does_not_write_or_that_claim_too_much_are_refused_unread(good, tmp_path, monkeypatch):
    """A 1.6 MB checkpoint with an extra entry of 1.5 GB of zeros had been unpacked whole and
    accepted; an entry whose header claims terabytes had been a MemoryError traceback."""
    import io
    _, arrays = good
    from tinyvae import model
    # the size limit follows MAX_PARAMS: a smaller one makes the oversized entry 16 MB, not 1 GiB
    monkeypatch.setattr(model, "MAX_PARAMS", 4 * max(v.size for v in arrays.values()))
    with pytest.raises(TinyVAEError, match="holds an entry 'junk' that tinyvae does not write"):
        tv.load(rewrite(tmp_path, dict(arrays, junk=np.zeros(3)), "junk.npz"))
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    huge = tmp_path / "huge.npz"
    with zipfile.ZipFile(huge, "w") as z:
        for k, v in arrays.items():
            entry = io.BytesIO()
            np.save(entry, v)
            z.writestr(f"{k}.npy", entry.getvalue())
        z.writestr("optim.extra.npy", buffer.getvalue() + bytes(16))      # claims 8 TiB, holds 16 bytes
    with pytest.raises(TinyVAEError, match="claims more memory than there is"):
        tv.load(huge)
    limit = 8 * model.MAX_PARAMS + 4096
    big = tmp_path / "big.npz"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for k, v in arrays.items():
            entry = io.BytesIO()
            np.save(entry, v)
            z.writestr(f"{k}.npy", entry.getvalue())
        with z.open("optim.w.npy", "w", force_zip64=True) as f:            # unpacks past the limit
            block = bytes(1 << 24)
            for _ in range(limit // len(block) + 1):
                f.write(block)
    assert big.stat().st_size < 8 << 20
    with pytest.raises(TinyVAEError, match=r"entry 'optim.w' unpacks to [\d,]+ bytes, more than"):
        tv.load(big)


def test_hand_edited_training_states(good, tmp_path):
    """A training state that could not come from a run: each one a TinyVAEError when the
    checkpoint is read (before, a negative step or a string moment loaded, then failed in
    fit with a KeyError or a numba typing error)."""
    _, arrays = good
    meta = json.loads(str(arrays["trainer"]))
    assert meta["epoch"] == 1 and meta["step"] == 0                 # the fixture: one epoch done

    def edited(**changes):
        return dict(arrays, trainer=np.array(json.dumps(dict(meta, **changes))))

    m = arrays["optim.m"]
    cases = {
        "negative step": (edited(step=-3), "step is -3"),
        "epoch a string": (edited(epoch="1"), "epoch is '1'"),
        "step a float": (edited(step=2.5), "step is 2.5"),
        "more minibatches than steps": (edited(step=5, n_steps=2), "minibatch 5"),
        "negative t": (edited(optimizer=dict(meta["optimizer"], t=-1)), "step count is -1"),
        "string moment": (dict(arrays, **{"optim.m": np.array(["a"] * m.size)}), "optimizer state 'm'"),
        "2-D moment": (dict(arrays, **{"optim.v": arrays["optim.v"].reshape(1, -1)}), "optimizer state 'v'"),
        "NaN moment": (dict(arrays, **{"optim.v": np.full_like(m, np.nan)}), "NaN"),
        "moments of two sizes": (dict(arrays, **{"optim.v": np.zeros(0, m.dtype)}), "differ in size"),
        "missing moment": ({k: v for k, v in arrays.items() if k != "optim.v"}, "holds the arrays"),
        "sgd state for adam": (dict({k: v for k, v in arrays.items() if not k.startswith("optim.")},
                                    **{"optim.velocity": m}), "holds the arrays"),
        "sums with no step": (edited(sums={"n": 5, "loss": 1.0}), "running sums"),
        "a step with no sums": (edited(step=1, n_steps=9), "running sums"),
        "history of two epochs for one": (edited(history={k: v * 2 for k, v in meta["history"].items()}),
                                          "history"),
        "history of strings": (edited(history={k: ["x"] for k in meta["history"]}), "history"),
        "data fingerprint a number": (edited(data_id=7), "fingerprint"),
        # counts no run reaches: t = 10**30 had loaded, then failed in numba at the first step
        "t of 10**30": (edited(optimizer=dict(meta["optimizer"], t=10**30)), "step count is 10+"),
        "batch of 10**30": (edited(batch_size=10**30), "batch_size is 10+"),
        "epoch of 2**62": (edited(epoch=2**62), "epoch is 4611686018427387904"),
        # a generator state out of range had been an OverflowError traceback
        "negative generator state": (edited(noise_rng=dict(meta["noise_rng"], state=dict(
            meta["noise_rng"]["state"], state=-1))), "training state is damaged"),
    }
    for name, (contents, match) in cases.items():
        with pytest.raises(TinyVAEError, match=match):
            tv.load(rewrite(tmp_path, contents, name.replace(" ", "_") + ".npz"))
    back = tv.load(rewrite(tmp_path, edited(), "unchanged.npz"))       # the unedited state still loads
    assert back.trainer.epoch == 1 and back.trainer.optimizer.m.shape == m.shape


def test_a_history_with_gaps_survives_a_checkpoint(x, tmp_path):
    """Validation losses that start on a later fit are NaN before; NaN is not JSON, so the
    checkpoint stores it as null and reads it back as NaN."""
    vae = tv.VAE(64, hidden_dims=(8,))
    tv.fit(vae, x, epochs=1, progress=False)
    tv.fit(vae, x, epochs=1, x_val=x[:50], progress=False)
    back = tv.load(vae.save(tmp_path / "gaps.npz")).trainer.history
    assert np.isnan(back["val_loss"][0]) and np.isfinite(back["val_loss"][1])
    assert back["loss"] == vae.trainer.history["loss"]


def test_resume_mid_epoch_with_dynamic_binarization_is_bit_identical(x, tmp_path):
    """The binarization stream is part of the saved state: a run stopped in the middle of an
    epoch and loaded from its checkpoint draws the same bits as one that never stopped."""
    ref = tv.VAE(input_dim=64, hidden_dims=(16,), latent_dim=3)
    h_ref = tv.fit(ref, x, epochs=2, batch_size=64, binarize="dynamic", progress=False)

    def stop(t):
        if t.epoch == 1 and t.step == 2:
            raise KeyboardInterrupt
    vae = tv.VAE(input_dim=64, hidden_dims=(16,), latent_dim=3)
    path = tmp_path / "m.npz"
    with pytest.raises(KeyboardInterrupt):
        tv.fit(vae, x, epochs=2, batch_size=64, binarize="dynamic", progress=False, callback=stop,
               checkpoint=path)
    back = tv.load(path)
    assert (back.trainer.epoch, back.trainer.step) == (1, 2)
    h = tv.fit(back, x, epochs=1, batch_size=64, binarize="dynamic", progress=False)
    assert np.array_equal(back.flat, ref.flat)
    assert h == h_ref
