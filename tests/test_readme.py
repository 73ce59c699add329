"""The README's Python example runs as printed, and its test command is the one CI runs."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README shows the library in a python block"
    monkeypatch.chdir(tmp_path)
    import tinyvae as tv
    reports, check_model = [], tv.check_model

    def keep(*args, **kwargs):                          # the report the example prints, checked below
        reports.append(check_model(*args, **kwargs))
        return reports[-1]
    monkeypatch.setattr(tv, "check_model", keep)
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert (tmp_path / "run" / "model.npz").exists()
    assert len(reports) == 1
    report = reports[0]
    claim = re.search(r"# errors ~1e-\d+, all under (1e-\d+)", blocks[0])
    assert claim, "the example's comment says how large the errors are"
    assert report.max_error < float(claim.group(1))
    assert "enc.W0" in capsys.readouterr().out


def test_the_quick_start_prints_what_the_readme_shows(tmp_path, monkeypatch, capsys):
    """`tinyvae train` with no options: the same files and hints, and the same nats to within
    0.05 (a BLAS built for another CPU may round differently; the seconds are not compared)."""
    from tinyvae.cli import main
    shown = re.search(r"ends with where the results are:\n\n```\n(.*?)```", README, flags=re.S)
    assert shown, "the README shows the end of the quick start's output"
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--no-progress"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-3:]
    expected = shown.group(1).strip().splitlines()
    assert printed[1:] == expected[1:]                                  # results in ..., next: ...
    number = r"(\d+\.\d+) nats"
    got, want = re.findall(number, printed[0]), re.findall(number, expected[0])
    assert len(got) == len(want) == 2 and "(rec " in printed[0]
    assert all(abs(float(g) - float(w)) < 0.05 for g, w in zip(got, want)), (printed[0], expected[0])
    terms = re.search(r"\(rec (\d+\.\d+) \+ KL (\d+\.\d+)\)", printed[0])
    claimed = re.search(r"\(rec (\d+\.\d+) \+ KL (\d+\.\d+)\)", expected[0])
    assert all(abs(float(g) - float(w)) < 0.05 for g, w in zip(terms.groups(), claimed.groups()))


def test_ci_runs_the_readme_test_command_verbatim():
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert len(commands) >= 2 and commands[0] == "pip install -e . && tinyvae train"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci


def command_summary():
    """The README's command-line block: {command: the options its lines name}."""
    section = README.split("## Command line", 1)[1]
    block = re.search(r"```\n(.*?)```", section, flags=re.S).group(1)
    commands, current = {}, None
    for line in block.splitlines():
        m = re.match(r"tinyvae (\w+)", line)
        if m:
            current = m.group(1)
            commands[current] = set()
        if current:
            commands[current] |= set(re.findall(r"\[(--[a-z][a-z0-9-]*)", line))
    return commands


def test_the_command_summary_names_real_options_and_points_at_help():
    from tinyvae.cli import build_parser
    parsers = build_parser().subcommands
    summary = command_summary()
    assert set(summary) == set(parsers), "every command, and only those, in the README summary"
    for name, options in summary.items():
        known = {o for a in parsers[name]._actions for o in a.option_strings}
        assert options <= known, f"README lists options tinyvae {name} does not have: {options - known}"
    # the options people need most are in the summary; the rest are one --help away
    needed = {"train": {"--no-figures", "--activation", "--optimizer", "--threads", "--checkpoint-every"},
              "eval": {"--data", "--n", "--seed"}, "sample": {"--seed", "--out", "--force"},
              "figures": {"--only", "--seed"}, "lesson": {"--quick"},
              "bench": {"--backends", "--threads", "--data"}, "gradcheck": {"--quiet"}}
    for name, options in needed.items():
        assert options <= summary[name], f"tinyvae {name}: {options - summary[name]} missing from the README"
    assert "`tinyvae COMMAND --help`" in README


def test_resume_and_the_autoencoder_default_loss_are_documented():
    section = README.split("## Command line", 1)[1].split("## Correctness", 1)[0]
    assert "--no-figures" in section and "figures setting" in section
    assert 'loss="mse"' in section and "binary cross-entropy" in section


def test_the_gradient_check_counts_are_those_the_command_runs():
    """The README counts the configurations of `tinyvae gradcheck`; adding an activation or a
    likelihood (CONTRIBUTING.md) adds some."""
    from tinyvae.autoencoder import gradcheck_configs as ae_configs
    from tinyvae.checks import layer_suite
    from tinyvae.vae import gradcheck_configs as vae_configs
    text = " ".join(README.split())
    n_layers, n_vae, n_ae = len(layer_suite()), len(vae_configs()), len(ae_configs())
    total = n_layers + n_vae + n_ae
    assert f"`tinyvae gradcheck` runs {total} configurations" in text
    assert f"{n_vae} VAEs" in text and f"{n_ae} autoencoders" in text
    assert f"the {total} configurations `tinyvae gradcheck` runs" in text
    assert "CONTRIBUTING.md" in text
