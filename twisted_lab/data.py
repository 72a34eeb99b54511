# -*- test-case-name: tests.test_data -*-
"""
Numpy data containers that every protocol maps its data objects onto.

They carry everything PyMoDAQ's C{Axis}, C{DataWithAxes} (and its family
C{DataRaw}, C{DataActuator}, C{DataFromPlugins}, C{DataCalculated}) and
C{DataToExport} carry, so that the PyMoDAQ TCP codec and the serializall
codec of LECO can convert losslessly in both directions:

  - L{Axis} ≈ C{Axis}: label, units, values, index, spread order;
  - L{Signal} ≈ C{DataWithAxes}: class name (C{kind}), name, units, channels
    (one array each), labels, axes, timestamp, origin, source, dimensionality,
    distribution, navigation indexes, errors and extra attributes;
  - L{Export} ≈ C{DataToExport}: a named, timestamped list of signals.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Axis", "Signal", "Export", "SIGNAL_KINDS", "dim_of"]

#: The PyMoDAQ class names a L{Signal} can stand for.
SIGNAL_KINDS = (
    "DataWithAxes",
    "DataRaw",
    "DataActuator",
    "DataFromPlugins",
    "DataCalculated",
)


def dim_of(shape: Sequence[int], nav_indexes: Sequence[int] = ()) -> str:
    """
    The PyMoDAQ dimensionality name of data of this shape.

    @param shape: the shape of one channel.
    @param nav_indexes: navigation axes (any makes the data C{DataND}).
    @return: C{"Data0D"}, C{"Data1D"}, C{"Data2D"} or C{"DataND"}.
    """
    if nav_indexes or len(shape) > 2:
        return "DataND"
    if len(shape) == 2:
        return "Data2D"
    if len(shape) == 1 and shape[0] > 1:
        return "Data1D"
    return "Data0D"


def _arrays_equal(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
        for x, y in zip(a, b)
    )


@dataclass(eq=False)
class Axis:
    """
    One axis of a signal: its values along one array dimension.

    @ivar label: what the axis is (C{"wavelength"}).
    @ivar units: its units (C{"nm"}).
    @ivar data: the axis values, a 1-D array (always full, even for linear axes).
    @ivar index: the array dimension this axis describes.
    @ivar spread_order: PyMoDAQ's order for spread (non-uniform) data; normally 0.
    """

    label: str = ""
    units: str = ""
    data: npt.NDArray[Any] = field(default_factory=lambda: np.zeros(0))
    index: int = 0
    spread_order: int = 0

    def __post_init__(self) -> None:
        self.data = np.atleast_1d(np.asarray(self.data))

    @classmethod
    def linear(
        cls, label: str, units: str, offset: float, scaling: float, size: int, index: int = 0
    ) -> Axis:
        """
        An axis of C{size} evenly spaced values C{offset + i * scaling}.
        """
        return cls(label, units, offset + scaling * np.arange(size, dtype=np.float64), index)

    @property
    def size(self) -> int:
        """The number of values."""
        return int(self.data.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Axis):
            return NotImplemented
        return (
            (self.label, self.units, self.index, self.spread_order)
            == (other.label, other.units, other.index, other.spread_order)
            and _arrays_equal([self.data], [other.data])
        )


@dataclass(eq=False)
class Signal:
    """
    Data from one source: one or more channels of the same shape, with axes.

    @ivar name: the signal's name (PyMoDAQ C{name}).
    @ivar data: the channels, one numpy array each, all of the same shape.
    @ivar labels: one label per channel (defaults C{CH00}, C{CH01}, ...).
    @ivar units: units of the values.
    @ivar axes: the signal axes (see L{Axis}).
    @ivar timestamp: Unix time in seconds.
    @ivar origin: where it came from (PyMoDAQ sets the L{Export} name here).
    @ivar kind: the PyMoDAQ class name, one of L{SIGNAL_KINDS}.
    @ivar source: C{"raw"} or C{"calculated"}.
    @ivar distribution: C{"uniform"} or C{"spread"}.
    @ivar nav_indexes: indexes of navigation dimensions (empty for plain 0D/1D/2D data).
    @ivar errors: per-channel error arrays (empty: no errors).
    @ivar extra: extra attributes in order (PyMoDAQ's C{extra_attributes}),
        for example C{do_plot} and C{do_save} of C{DataFromPlugins}.
    @ivar dim: the dimensionality name; computed from the shape when not given.
    """

    name: str
    data: list[npt.NDArray[Any]]
    labels: list[str] = field(default_factory=list)
    units: str = ""
    axes: list[Axis] = field(default_factory=list)
    timestamp: float = field(default_factory=time.time)
    origin: str = ""
    kind: str = "DataWithAxes"
    source: str = "raw"
    distribution: str = "uniform"
    nav_indexes: tuple[int, ...] = ()
    errors: list[npt.NDArray[Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    dim: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.data, np.ndarray):
            self.data = [self.data]
        self.data = [np.atleast_1d(np.asarray(channel)) for channel in self.data]
        if not self.data:
            raise ValueError(f"signal {self.name!r} has no channel")
        shape = self.data[0].shape
        for i, channel in enumerate(self.data):
            if channel.shape != shape:
                raise ValueError(
                    f"signal {self.name!r}: channel {i} has shape {channel.shape}, "
                    f"channel 0 has {shape}"
                )
        if self.kind not in SIGNAL_KINDS:
            raise ValueError(f"unknown signal kind {self.kind!r}; use one of {SIGNAL_KINDS}")
        if not self.labels:
            self.labels = [f"CH{i:02d}" for i in range(len(self.data))]
        elif len(self.labels) != len(self.data):
            raise ValueError(
                f"signal {self.name!r}: {len(self.labels)} labels for {len(self.data)} channels"
            )
        self.nav_indexes = tuple(int(i) for i in self.nav_indexes)
        if not self.dim:
            self.dim = dim_of(shape, self.nav_indexes)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of each channel."""
        return tuple(self.data[0].shape)

    @property
    def ndim(self) -> int:
        """0 for a single value, else the number of array dimensions."""
        return 0 if self.dim == "Data0D" else len(self.shape)

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signal):
            return NotImplemented
        return (
            (self.name, self.labels, self.units, self.axes, self.timestamp, self.origin,
             self.kind, self.source, self.distribution, self.nav_indexes, self.dim)
            == (other.name, other.labels, other.units, other.axes, other.timestamp,
                other.origin, other.kind, other.source, other.distribution,
                other.nav_indexes, other.dim)
            and _arrays_equal(self.data, other.data)
            and _arrays_equal(self.errors, other.errors)
            and _extras_equal(self.extra, other.extra)
        )

    @classmethod
    def scalar(cls, name: str, value: float, units: str = "", kind: str = "DataWithAxes",
               **kwargs: Any) -> Signal:
        """
        A one-channel 0D signal holding C{value} (as PyMoDAQ's C{DataActuator} does).
        """
        return cls(name, [np.array([value], dtype=np.float64)], units=units, kind=kind, **kwargs)

    def value(self, channel: int = 0) -> float:
        """The first value of a channel, as a Python float (for 0D data)."""
        return float(self.data[channel].flat[0])


def _extras_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if list(a) != list(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(np.asarray(x), np.asarray(y)):
                return False
        elif x != y:
            return False
    return True


@dataclass(eq=False)
class Export:
    """
    A named, timestamped list of L{Signal}s (PyMoDAQ's C{DataToExport}).

    @ivar name: the export's name (usually the device name).
    @ivar signals: the signals.
    @ivar timestamp: Unix time in seconds.
    @ivar extra: extra attributes in order.
    """

    name: str
    signals: list[Signal] = field(default_factory=list)
    timestamp: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Signal]:
        return iter(self.signals)

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, index: int) -> Signal:
        return self.signals[index]

    def by_dim(self, dim: str) -> list[Signal]:
        """The signals of one dimensionality (C{"Data2D"}, ...)."""
        return [s for s in self.signals if s.dim == dim]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Export):
            return NotImplemented
        return (
            (self.name, self.timestamp, self.signals) == (other.name, other.timestamp, other.signals)
            and _extras_equal(self.extra, other.extra)
        )
