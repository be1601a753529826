"""Build hook (the rest of the metadata is in pyproject.toml).

The report notebooks are kept once, as ``notebooks/03_report.ipynb`` and
``notebooks/04_compare.ipynb`` beside the other notebooks; wheels carry copies of them as
``bandscope_nb/notebook/report.ipynb`` and ``compare.ipynb``, so ``bandscope report`` and
``bandscope compare`` work from an installed package too.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
COPIES = {"03_report.ipynb": "report.ipynb", "04_compare.ipynb": "compare.ipynb"}


class BuildPyWithReport(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:  # an editable install reads notebooks/ in place
            for source, name in COPIES.items():
                target = Path(self.build_lib) / "bandscope_nb" / "notebook" / name
                shutil.copyfile(NOTEBOOKS / source, target)


setup(cmdclass={"build_py": BuildPyWithReport})
