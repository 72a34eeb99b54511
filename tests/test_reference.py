# -*- test-case-name: tests.test_reference -*-
"""
Tests for L{twisted_lab.reference}: the configuration reference stays true.
"""
from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.reference import MARKER, config_reference

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "configuration.md")


class ReferenceTests(SynchronousTestCase):
    """docs/configuration.md carries the reference generated from the schemas."""

    def test_reference_lists_everything(self) -> None:
        """The reference has [lab], every built-in device type and protocol section."""
        text = config_reference()
        for name in ("## `[lab]`", "### `sim.camera`", "### `visa`", "### `[pymodaq]`",
                     "### `[leco]`", "### `[plesty]`", "### `[la4]`"):
            self.assertIn(name, text)

    def test_doc_up_to_date(self) -> None:
        """The generated part of docs/configuration.md equals the current reference
        (regenerate it with python -m twisted_lab.reference)."""
        with open(DOC) as f:
            doc = f.read()
        self.assertIn(MARKER, doc)
        self.assertEqual(doc[doc.index(MARKER):], config_reference())
