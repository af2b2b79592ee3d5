"""Command-line interface: thin wrappers that parse arguments and call the Python API.

``xmodal fit``, ``tune``, ``compare``, ``bench``, ``predict``, ``evaluate``, ``bodies``, ``datasets``,
``strategies``, ``demo``; ``xmodal CMD --help`` explains each. Every user-facing problem surfaces as one
line ``error: …`` and exit status 2.

:mod:`.parser` builds the parser and runs :func:`main`; :mod:`.fit` is ``xmodal fit`` (the run folder);
:mod:`.commands` the other commands; :mod:`.common` what they share.
"""

from xmodal.cli.parser import build_parser, main

__all__ = ["main", "build_parser"]
