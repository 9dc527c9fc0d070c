"""Names shared by the command-line tests and their fixtures (a module, not conftest, so
test files can import it)."""

from __future__ import annotations

import json
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Three words of Speech Commands, six clips each: a plain tree of class folders.
WORDS = ("bed", "cat", "dog")
CLIPS_PER_WORD = 6
#: Four digits x three speakers x three takes of FSDD, in its own layout (groups = speakers).
DIGITS = ("0", "1", "2", "3")
SPEAKERS = ("george", "jackson", "lucas")
TAKES = (0, 1, 2)


@dataclass
class Run:
    """What a command left behind: exit code and the two streams, as text."""

    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)
