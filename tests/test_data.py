"""
Tests for L{twisted_lab.data}: Axis, Signal and Export.
"""
from __future__ import annotations

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.data import Axis, Export, Signal, dim_of


class DimTests(SynchronousTestCase):
    """dim_of names PyMoDAQ dimensionalities."""

    def test_dims(self) -> None:
        """Shapes map to Data0D/1D/2D/ND; navigation axes make DataND."""
        self.assertEqual(dim_of((1,)), "Data0D")
        self.assertEqual(dim_of((5,)), "Data1D")
        self.assertEqual(dim_of((2, 3)), "Data2D")
        self.assertEqual(dim_of((2, 3, 4)), "DataND")
        self.assertEqual(dim_of((5,), nav_indexes=(0,)), "DataND")


class AxisTests(SynchronousTestCase):
    """Axis holds full values and compares by content."""

    def test_linear(self) -> None:
        """Axis.linear builds offset + i * scaling."""
        axis = Axis.linear("x", "mm", 1.0, 0.5, 4, index=1)
        self.assertTrue(np.array_equal(axis.data, [1.0, 1.5, 2.0, 2.5]))
        self.assertEqual((axis.size, axis.index), (4, 1))

    def test_equality(self) -> None:
        """Equal when label, units, index and values match."""
        self.assertEqual(Axis("x", "mm", [1, 2]), Axis("x", "mm", np.array([1, 2])))
        self.assertNotEqual(Axis("x", "mm", [1, 2]), Axis("x", "um", [1, 2]))
        self.assertNotEqual(Axis("x", "mm", [1, 2]), Axis("x", "mm", [1, 3]))
        self.assertEqual(Axis("x", data=5).data.shape, (1,))


class SignalTests(SynchronousTestCase):
    """Signal validates its channels and computes its dimensionality."""

    def test_defaults(self) -> None:
        """Labels default to CH00..., dim comes from the shape."""
        signal = Signal("s", [np.zeros((3, 4)), np.ones((3, 4))])
        self.assertEqual(signal.labels, ["CH00", "CH01"])
        self.assertEqual((signal.dim, signal.shape, signal.ndim, len(signal)),
                         ("Data2D", (3, 4), 2, 2))

    def test_single_array(self) -> None:
        """A bare array is one channel."""
        signal = Signal("s", np.arange(5.0))
        self.assertEqual((len(signal), signal.dim), (1, "Data1D"))

    def test_scalar(self) -> None:
        """Signal.scalar is a one-channel 0D float64 signal."""
        signal = Signal.scalar("p", 2.5, "W", kind="DataActuator")
        self.assertEqual((signal.dim, signal.ndim, signal.value(), signal.units),
                         ("Data0D", 0, 2.5, "W"))
        self.assertEqual(signal.data[0].dtype, np.float64)

    def test_invalid(self) -> None:
        """No channel, mismatched shapes or labels, or an unknown kind are ValueErrors."""
        self.assertRaises(ValueError, Signal, "s", [])
        self.assertRaises(ValueError, Signal, "s", [np.zeros(2), np.zeros(3)])
        self.assertRaises(ValueError, Signal, "s", [np.zeros(2)], labels=["a", "b"])
        self.assertRaises(ValueError, Signal, "s", [np.zeros(2)], kind="DataX")

    def test_equality(self) -> None:
        """Equal signals have equal metadata, dtypes and values (NaN equals NaN)."""
        a = Signal("s", [np.array([1.0, np.nan])], timestamp=1.0, extra={"do_plot": True})
        b = Signal("s", [np.array([1.0, np.nan])], timestamp=1.0, extra={"do_plot": True})
        self.assertEqual(a, b)
        self.assertNotEqual(a, Signal("s", [np.array([1.0, np.nan], dtype=np.float32)],
                                      timestamp=1.0, extra={"do_plot": True}))
        self.assertNotEqual(a, Signal("s", [np.array([1.0, np.nan])], timestamp=1.0))
        self.assertNotEqual(a, Signal("s", [np.array([1.0, np.nan])], timestamp=2.0,
                                      extra={"do_plot": True}))


class ExportTests(SynchronousTestCase):
    """Export is a list of signals with a name and timestamp."""

    def test_container(self) -> None:
        """Iteration, indexing, length and by_dim."""
        s0 = Signal.scalar("p", 1.0)
        s2 = Signal("img", [np.zeros((2, 2))])
        export = Export("dev", [s0, s2], timestamp=3.0)
        self.assertEqual(list(export), [s0, s2])
        self.assertIs(export[1], s2)
        self.assertEqual(len(export), 2)
        self.assertEqual(export.by_dim("Data2D"), [s2])
        self.assertEqual(export, Export("dev", [s0, s2], timestamp=3.0))
        self.assertNotEqual(export, Export("dev", [s0], timestamp=3.0))
