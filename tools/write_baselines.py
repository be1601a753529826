"""Recompute the demo-song baselines and write the table into docs/baselines.md.

Usage: python tools/write_baselines.py
"""

from pathlib import Path

from bandscope_nb.demo.baselines import demo_baselines, to_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs" / "baselines.md"
BEGIN, END = "<!-- table -->", "<!-- /table -->"

if __name__ == "__main__":
    text = DOCS.read_text()
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    DOCS.write_text(f"{head}{BEGIN}\n{to_markdown(demo_baselines())}\n{END}{tail}")
    print(f"updated {DOCS}")
