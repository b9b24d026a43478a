"""No Docker engine runs here: check the Dockerfiles stay consistent with the install path."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r"):
            pins.update(_pins(path.parent / line[2:].strip()))
        elif "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_dockerfiles_reference_existing_files_and_entrypoint():
    for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (ROOT / "docker" / name).read_text()
        for req in re.findall(r"requirements/[\w.]+\.txt", text):
            assert (ROOT / req).is_file(), f"{name} references missing {req}"
        for src in re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)\s", text, flags=re.M):
            assert (ROOT / src).exists(), f"{name} copies missing {src}"
        assert 'ENTRYPOINT ["anchorudf"]' in text
        assert re.search(r"^USER\s+(?!root)\w+", text, flags=re.M), f"{name} must not run as root"
        assert "pip install --no-deps --no-build-isolation -e ." in text


def test_same_pins_as_the_readme_install():
    cpu = _pins(ROOT / "requirements" / "cpu.txt")
    gpu = _pins(ROOT / "requirements" / "gpu.txt")
    assert cpu["torch"] == "2.13.0"  # the CPU wheel; a range would pull CUDA builds
    assert "torch" not in gpu
    assert {k: v for k, v in cpu.items() if k != "torch"} == gpu
    setup = (ROOT / ".ci" / "setup").read_text()
    assert "requirements/cpu.txt" in setup and re.search(r"pip install (-q )?--no-deps --no-build-isolation -e \.", setup)
    assert "python:3.11" in (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert "libosmesa6" in (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert "PYOPENGL_PLATFORM=egl" in (ROOT / "docker" / "Dockerfile.cuda").read_text()


def test_readme_quickstart_matches_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = "bash .ci/setup --dev && .venv/bin/python -m pytest -q"
    assert test_cmd in readme and test_cmd in ci
    assert "bash .ci/setup && . .venv/bin/activate && dvc repro" in readme


def test_documented_python_m_commands_exist():
    """Every ``-m MODULE`` in the READMEs (e.g. torchrun's) names a runnable module."""
    import importlib.util

    for doc in (ROOT / "README.md", ROOT / "docker" / "README.md"):
        for name in set(re.findall(r"-m\s+(anchorudf[\w.]*)", doc.read_text())):
            spec = importlib.util.find_spec(name)
            assert spec is not None, f"{doc.name}: -m {name}: no such module"
            if spec.submodule_search_locations is not None:  # a package runs its __main__
                assert importlib.util.find_spec(f"{name}.__main__") is not None, f"{doc.name}: -m {name}"
    assert "-m anchorudf train" in (ROOT / "docker" / "README.md").read_text()
