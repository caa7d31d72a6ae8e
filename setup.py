"""Everything is in setup.cfg; this file only mends editable installs.

setuptools' editable wheel installs ``data_files`` only when the distribution answers
``has_data()``, a method it does not have (pypa/setuptools#3399): ``pip install -e .`` would
then install none of them, and the Jupyter server configuration that enables the workbench's
server extension (etc/jupyter/jupyter_server_config.d) and the built JupyterLab extension
(share/jupyter/labextensions) would be missing from the environment.
"""
from setuptools import setup
from setuptools.dist import Distribution

if not hasattr(Distribution, "has_data"):
    Distribution.has_data = Distribution.has_data_files  # type: ignore[attr-defined]

setup()
