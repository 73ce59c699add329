"""The README's Python example runs as printed, and its test command is the one CI runs."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README shows the library in a python block"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert (tmp_path / "run" / "model.npz").exists()
    report = namespace["tv"].check_model(namespace["tv"].VAE(64, dtype="float64"), namespace["ds"].x_test[:4],
                                         namespace["eps"][:4].astype("float64"))
    assert report.max_error < 1e-7
    assert "enc.W0" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command_verbatim():
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert len(commands) >= 2 and commands[0] == "pip install -e . && tinyvae train"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci
