"""caffe-nantools: find out why Caffe training says ``loss = nan``.

The package root stays light: the check layer imports it from inside Caffe, so it pulls in
nothing beyond the error classes and the version.
"""

from caffe_nantools.errors import CheckConfigError, NanToolsError, NonFiniteError

__version__ = "0.1.0"

__all__ = ["CheckConfigError", "NanToolsError", "NonFiniteError", "__version__"]
