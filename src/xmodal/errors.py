"""The one exception type xmodal raises for problems a user can fix."""

from __future__ import annotations


class XmodalError(ValueError):
    """Bad input, configuration or environment, detected before any training starts.

    The message always names what is wrong and how to fix it. It subclasses
    :class:`ValueError` so that code written against scikit-learn conventions
    (``except ValueError``) keeps working.
    """


class TrainingDiverged(XmodalError):
    """A training stage produced a non-finite loss or gradient norm, so it was stopped.

    The message names the stage, epoch and step and what to try; the run's checkpoint folder keeps
    the last checkpoint written before the divergence.
    """


class InputTypeError(XmodalError, TypeError):
    """Input values of a type xmodal cannot read as numbers (e.g. a dict inside an object array).

    Also a :class:`TypeError`, as NumPy and scikit-learn raise for such values.
    """
