"""nbval settings: compare only what is deterministic and version-independent.

Cells marked ``# NBVAL_CHECK_OUTPUT`` are compared (with ``--nbval-lax``); HTML (base64 audio),
images, widget views and stderr (progress bars) never are.
"""


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += (
            "text/html",
            "image/png",
            "application/javascript",
            "application/vnd.jupyter.widget-view+json",
            "stderr",
        )
