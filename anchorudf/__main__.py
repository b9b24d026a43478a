"""``python -m anchorudf ...``: the ``anchorudf`` command line.

Also the multi-process entry point: ``torchrun --nproc_per_node=N -m anchorudf train ...``.
"""

from anchorudf.cli import app

if __name__ == "__main__":
    app(prog_name="anchorudf")
