"""The package's version is the distribution's."""

import tomllib
from pathlib import Path

import nstm


def test_version_matches_pyproject():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert nstm.__version__ == pyproject["project"]["version"]
    assert pyproject["project"]["name"] == "nstm-imaging"  # `nstm` on PyPI is another project
