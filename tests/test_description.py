"""
Tests for L{twisted_lab.description}: parameters, arguments, actions and
their validation.
"""
from __future__ import annotations

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.description import Action, Argument, Description, Parameter, coerce
from twisted_lab.errors import InvalidValue


class CoerceTests(SynchronousTestCase):
    """coerce() accepts what a type allows and names what it refuses."""

    def test_numbers(self) -> None:
        """ints are floats; integral floats are ints; bools are never numbers."""
        self.assertEqual(coerce("float", 3, "x"), 3.0)
        self.assertIsInstance(coerce("float", 3, "x"), float)
        self.assertEqual(coerce("int", 4.0, "x"), 4)
        self.assertEqual(coerce("float", np.float32(1.5), "x"), 1.5)
        self.assertRaises(InvalidValue, coerce, "int", 4.5, "x")
        self.assertRaises(InvalidValue, coerce, "float", True, "x")
        self.assertRaises(InvalidValue, coerce, "bool", 1, "x")
        e = self.assertRaises(InvalidValue, coerce, "float", "3", "dev.p")
        self.assertEqual(str(e), "dev.p must be float, got str '3'")

    def test_containers(self) -> None:
        """lists accept tuples, arrays accept lists, any accepts anything."""
        self.assertEqual(coerce("list", (1, 2), "x"), [1, 2])
        self.assertTrue(np.array_equal(coerce("array", [1, 2], "x"), np.array([1, 2])))
        self.assertEqual(coerce("dict", {"a": 1}, "x"), {"a": 1})
        obj = object()
        self.assertIs(coerce("any", obj, "x"), obj)
        self.assertRaises(InvalidValue, coerce, "dict", [], "x")
        self.assertRaises(InvalidValue, coerce, "complex", 1, "x")


class ParameterTests(SynchronousTestCase):
    """Parameter.validate checks type, limits and choices."""

    def test_limits(self) -> None:
        """Values outside the limits are refused with units in the message."""
        p = Parameter("wavelength", "float", "nm", minimum=400, maximum=800)
        self.assertEqual(p.validate(500, "pm"), 500.0)
        e = self.assertRaises(InvalidValue, p.validate, 900, "pm")
        self.assertIn("pm.wavelength = 900.0 nm is above the maximum 800 nm", str(e))
        self.assertRaises(InvalidValue, p.validate, 399.9)
        self.assertEqual(p.limits, (400, 800))

    def test_choices(self) -> None:
        """Only listed choices are accepted."""
        p = Parameter("sensor", "str", choices=("A", "B"))
        self.assertEqual(p.validate("B"), "B")
        e = self.assertRaises(InvalidValue, p.validate, "C")
        self.assertIn("'A', 'B'", str(e))

    def test_bad_type_name(self) -> None:
        """An unknown parameter type is a programming error (ValueError)."""
        self.assertRaises(ValueError, Parameter, "x", "complex")

    def test_as_dict(self) -> None:
        """as_dict carries limits and choices only when set."""
        self.assertEqual(Parameter("x", "int", minimum=0, choices=(0, 1)).as_dict(),
                         {"name": "x", "type": "int", "units": "", "readonly": False,
                          "doc": "", "minimum": 0, "choices": [0, 1]})
        self.assertNotIn("maximum", Parameter("y").as_dict())


class ActionTests(SynchronousTestCase):
    """Action.bind matches arguments to the declaration."""

    def setUp(self) -> None:
        self.action = Action("move", (Argument("x", "float"), Argument("speed", "float", 1.0),
                                      Argument("note", "str", None)))

    def test_bind(self) -> None:
        """Positional, keyword and default values come back in order, coerced."""
        self.assertEqual(self.action.bind([1], {}), [1.0, 1.0, None])
        self.assertEqual(self.action.bind([], {"x": 2, "speed": 3}), [2.0, 3.0, None])
        self.assertEqual(self.action.bind([1, 2, "n"], {}), [1.0, 2.0, "n"])

    def test_bind_errors(self) -> None:
        """Too many, unknown, duplicated, missing or ill-typed arguments are refused."""
        for args, kwargs, text in [([1, 2, "n", 4], {}, "takes 3 arguments, 4 given"),
                                   ([1], {"y": 1}, "no argument 'y'"),
                                   ([1], {"x": 1}, "got 'x' twice"),
                                   ([], {}, "missing its argument 'x'"),
                                   (["far"], {}, "stage.move(x) must be float")]:
            e = self.assertRaises(InvalidValue, self.action.bind, args, kwargs, "stage")
            self.assertIn(text, str(e))

    def test_as_dict(self) -> None:
        """as_dict lists arguments with required flags and defaults."""
        d = self.action.as_dict()
        self.assertEqual(d["arguments"][0], {"name": "x", "type": "float", "units": "",
                                             "required": True})
        self.assertEqual(d["arguments"][1]["default"], 1.0)
        self.assertTrue(d["mutating"])


class DescriptionTests(SynchronousTestCase):
    """Description.build and as_dict."""

    def test_build(self) -> None:
        """build keeps order and the extra fields."""
        desc = Description.build("cam", [Parameter("b"), Parameter("a")], [Action("grab")],
                                 kind="detector", dims=("Data2D",))
        self.assertEqual(list(desc.parameters), ["b", "a"])
        out = desc.as_dict()
        self.assertEqual((out["kind"], out["dims"], list(out["actions"])),
                         ("detector", ["Data2D"], ["grab"]))
