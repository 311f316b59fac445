"""Exception classes that satisfy both styles of handler.

birnn's messages name the argument, what was expected and what was got. Where torch.nn raises
another class for the same mistake, birnn raises a class that *is* both, so code written
against torch.nn (``except RuntimeError``) and code written against birnn (``except
ValueError``) both catch it:

==================  ===============================  =========================================
class               is a                             raised for
==================  ===============================  =========================================
``ShapeError``      ``ValueError``, ``RuntimeError``  a tensor whose shape does not fit the
                                                     layer (input size, h_0/c_0): torch.nn
                                                     raises ``RuntimeError``
``DeviceError``     ``ValueError``, ``RuntimeError``  a tensor on another device than the layer
``DtypeError``      ``TypeError``, ``ValueError``     an input whose dtype does not match the
                                                     parameters': torch.nn raises ``ValueError``
``ArgumentTypeError`` ``TypeError``, ``ValueError``   a constructor argument of the wrong type
                                                     (``num_layers=1.5``): torch.nn raises
                                                     ``TypeError``
==================  ===============================  =========================================

>>> issubclass(ShapeError, ValueError) and issubclass(ShapeError, RuntimeError)
True
"""

from __future__ import annotations

__all__ = ["ArgumentTypeError", "DeviceError", "DtypeError", "ShapeError"]


class ShapeError(ValueError, RuntimeError):
    """A tensor's shape does not fit the layer (torch.nn: ``RuntimeError``)."""


class DeviceError(ValueError, RuntimeError):
    """A tensor is on another device than the layer's parameters (torch.nn: ``RuntimeError``)."""


class DtypeError(TypeError, ValueError):
    """An input's dtype does not match the layer's parameters (torch.nn: ``ValueError``)."""


class ArgumentTypeError(TypeError, ValueError):
    """A constructor argument has the wrong type (torch.nn: ``TypeError``)."""
