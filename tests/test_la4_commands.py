# -*- test-case-name: tests.test_la4_commands -*-
"""
Tests for L{twisted_lab.protocols.la4.commands}: the allow-listed C{cmd} grammar.
"""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.errors import InvalidValue
from twisted_lab.protocols.la4 import commands
from twisted_lab.formats.la4.registers import Row
from twisted_lab.protocols.la4.commands import (Boardio, CommandLine, CommandRejected,
                                                WriteRows, parse_command, rows_from)

from tests.test_la4_message import DOC_COMMAND_TEXT


class RenderTests(SynchronousTestCase):
    """The builders render the documented command forms from fixed templates."""

    def test_documented_example(self) -> None:
        """run_sequence of the documented rows renders the documented line exactly."""
        line = commands.run_sequence([["MODEL_LIGHT", 100], "LED_FAN,1"])
        self.assertEqual(line.render(), DOC_COMMAND_TEXT)

    def test_builders(self) -> None:
        """Each lighting operation renders its documented row."""
        seq = ' > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq'
        cases = {
            commands.model_light(0): 'echo "MODEL_LIGHT,0"' + seq,
            commands.fire_all(80): 'echo "ALL_4_NIKON,80"' + seq,
            commands.fire_all(80, "canon", 109): 'echo "ALL_4_CANON,80,109"' + seq,
            commands.olat(10, True): 'echo "OLAT_4_NIKON,10,1"' + seq,
            commands.olat(10, False, "canon"): 'echo "OLAT_4_CANON,10,0"' + seq,
            commands.fans(True): 'echo "LED_FAN,1"' + seq,
            commands.polarizer(False): 'echo "DIGITAL_POLARIZER,0"' + seq,
            commands.upload_sequence(["LED_FAN,1"]):
                'echo "LED_FAN,1" > /home/rigsters/la4_sequence.csv && boardiocli uSeq',
            commands.start_sequence(): "boardiocli runSeq",
            commands.store_standalone(["LED_FAN,1", "MODEL_LIGHT,5"]):
                'echo "LED_FAN,1\\nMODEL_LIGHT,5" > /home/rigsters/la4_sequence_standalone.csv'
                ' && boardiocli uSeqStandalone',
        }
        for line, text in cases.items():
            self.assertEqual(line.render(), text)
            self.assertEqual(parse_command(text), line)

    def test_invalid_numbers(self) -> None:
        """Out-of-range or non-integer values never reach a command string."""
        for build in (lambda: commands.model_light(101), lambda: commands.model_light(-1),
                      lambda: commands.fire_all(50, "canon", 110),
                      lambda: commands.fire_all(50, "canon"),
                      lambda: commands.fire_all(50, "nikon", 5),
                      lambda: commands.fire_all(50, "leica"),
                      lambda: commands.olat(50, camera="x"),
                      lambda: commands.model_light("100; rm -rf /"),  # type: ignore[arg-type]
                      lambda: commands.model_light(1.5)):  # type: ignore[arg-type]
            self.assertRaises(InvalidValue, build)

    def test_rows_are_parsed_not_pasted(self) -> None:
        """Caller row strings are parsed into L{Row}s; text around them is refused."""
        self.assertEqual(rows_from([" MODEL_LIGHT , 7 ", ("LED_FAN", True)]),
                         (Row("MODEL_LIGHT", (7,)), Row("LED_FAN", (1,))))
        for bad in (['MODEL_LIGHT,1" > /etc/x; echo "'], ["MODEL_LIGHT,1\nLED_FAN,1"],
                    ["NOPE,1"], [["MODEL_LIGHT"]], [["MODEL_LIGHT", "1"]], [42], "LED_FAN,1"):
            self.assertRaises(InvalidValue, rows_from, bad)


class ParseTests(SynchronousTestCase):
    """L{parse_command} accepts the allow-list and nothing else."""

    def test_documented_line(self) -> None:
        """The documented command parses to a write and two verbs."""
        self.assertEqual(parse_command(DOC_COMMAND_TEXT), CommandLine((
            WriteRows("sequence", (Row("MODEL_LIGHT", (100,)), Row("LED_FAN", (1,)))),
            Boardio("uSeq"), Boardio("runSeq"))))

    def test_variants(self) -> None:
        """Bare verbs, the home-relative path and real newlines are accepted."""
        self.assertEqual(parse_command("boardiocli uSeq"), CommandLine((Boardio("uSeq"),)))
        self.assertEqual(parse_command("  boardiocli   runSeq "),
                         CommandLine((Boardio("runSeq"),)))
        line = parse_command('echo "LED_FAN,1\nMODEL_LIGHT,3\\n" > ~/la4_sequence.csv')
        self.assertEqual(line.steps[0], WriteRows("sequence", (Row("LED_FAN", (1,)),
                                                               Row("MODEL_LIGHT", (3,)))))
        self.assertEqual(parse_command('echo "" > ~/la4_sequence_standalone.csv'),
                         CommandLine((WriteRows("standalone", ()),)))

    def test_disallowed(self) -> None:
        """Shell syntax, other programs and other files are refused."""
        for text in [
            "rm -rf /",
            "boardiocli uSeq; rm -rf /",
            "boardiocli uSeq ; boardiocli runSeq",
            "`reboot`",
            "boardiocli `id`",
            "boardiocli $(id)",
            'echo "$(id)" > /home/rigsters/la4_sequence.csv',
            'echo "`id`" > /home/rigsters/la4_sequence.csv',
            'echo "MODEL_LIGHT,1" > /etc/passwd',
            'echo "MODEL_LIGHT,1" > /home/rigsters/../../etc/passwd',
            'echo "MODEL_LIGHT,1" >> /home/rigsters/la4_sequence.csv',
            'echo "MODEL_LIGHT,1" > /home/rigsters/la4_sequence.csv > /tmp/x',
            "boardiocli uSeq > /tmp/out",
            "boardiocli uSeq | sh",
            "boardiocli uSeq & boardiocli runSeq",
            "boardiocli uSeq || reboot",
            "boardiocli reboot",
            "sh -c 'boardiocli uSeq'",
            "boardiocli uSeq\nreboot",
            'echo "MODEL_LIGHT,101" > /home/rigsters/la4_sequence.csv',
            'echo "FOO,1" > /home/rigsters/la4_sequence.csv',
            'echo "MODEL_LIGHT,1,2" > /home/rigsters/la4_sequence.csv',
            'echo "LED_FAN,1" > ~/la4_sequence.csv && echo "LED_FAN,0" > ~/la4_sequence.csv',
            " && ".join(["boardiocli uSeq"] * 5),
            "",
        ]:
            self.assertRaises(CommandRejected, parse_command, text)

    def test_reason_does_not_echo_input(self) -> None:
        """The refusal reason does not repeat the caller's text."""
        with self.assertRaises(CommandRejected) as caught:
            parse_command("cat /secret-token-xyz")
        self.assertNotIn("secret-token-xyz", caught.exception.message)
