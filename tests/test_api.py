"""The README's Python API example runs as written (in a fresh interpreter,
in a scratch folder) and the public names it uses are the package's own."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def readme_api_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs(tmp_path, no_leaks):
    code = readme_api_example()
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy per latency" in result.stdout and "'violations': 0" in result.stdout, result.stdout
    assert (tmp_path / "runs" / "api-mlp.nir").is_file()


def test_every_public_name_resolves():
    import slt_deploy

    for name in slt_deploy.__all__:
        assert getattr(slt_deploy, name) is not None, name
    names = set(re.findall(r"\bsd\.(\w+)", readme_api_example()))
    assert names <= set(slt_deploy.__all__), names - set(slt_deploy.__all__)
