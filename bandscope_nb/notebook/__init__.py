"""Notebook presentation: figures, widgets, HTML embedding and the report notebook.

The only layer that imports matplotlib, IPython, ipywidgets or anywidget.
"""
