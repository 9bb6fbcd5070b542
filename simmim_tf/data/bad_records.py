"""What happens to a bad record: an error at once, or, when the user asked
for it with `--skip-bad-records`, a skipped record that is counted and
reported. Nothing is dropped silently."""

from simmim_tf.errors import SimMIMInputError


class BadRecords:
    """Receives one message per bad record ("file:line: what is wrong").

    Args:
        skip: bool. False (the default) raises `SimMIMInputError` with the
            first message; True keeps every message and goes on.

    Example:
    >>> bad = BadRecords(skip=True)
    >>> bad("questions.jsonl:3: missing field 'answer'")
    >>> len(bad)
    1
    """

    def __init__(self, skip=False):
        self.skip = skip
        self.messages = []

    def __call__(self, message):
        if not self.skip:
            raise SimMIMInputError(message)
        self.messages.append(message)

    def __len__(self):
        return len(self.messages)

    def summary(self, limit=10):
        """The first `limit` messages and how many more there are."""
        lines = self.messages[:limit]
        if len(self.messages) > limit:
            lines.append(f"... and {len(self.messages) - limit} more")
        return "\n".join(lines)
