"""Build hook (the rest of the metadata is in pyproject.toml).

The report notebook is kept once, as ``notebooks/03_report.ipynb`` beside the other notebooks;
wheels carry a copy of it as ``bandscope_nb/notebook/report.ipynb``, so ``bandscope report``
works from an installed package too.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

REPORT = Path(__file__).resolve().parent / "notebooks" / "03_report.ipynb"


class BuildPyWithReport(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:  # an editable install reads notebooks/ in place
            target = Path(self.build_lib) / "bandscope_nb" / "notebook" / "report.ipynb"
            shutil.copyfile(REPORT, target)


setup(cmdclass={"build_py": BuildPyWithReport})
