"""What happens to a bad record: an error at once, or, when the user asked
for it with `--skip-bad-records`, a skipped record that is counted and
reported. Nothing is dropped silently."""

from simmim_tf.errors import SimMIMInputError


class BadRecords:
    """Receives one message per bad record ("file:line: what is wrong"), and
    how many questions (or captions) it leaves out: an unreadable image
    leaves out every question about it.

    Args:
        skip: bool. False (the default) raises `SimMIMInputError` with the
            first message; True keeps every message and goes on.

    Example:
    >>> bad = BadRecords(skip=True)
    >>> bad("questions.jsonl:3: missing field 'answer'")
    >>> bad("images/7.png: not found (11 questions use it)", left_out=11)
    >>> len(bad), bad.left_out
    (2, 12)
    """

    def __init__(self, skip=False):
        self.skip = skip
        self.messages = []
        self.left_out = 0

    def __call__(self, message, left_out=1):
        if not self.skip:
            raise SimMIMInputError(message)
        self.messages.append(message)
        self.left_out += left_out

    def __len__(self):
        return len(self.messages)

    def summary(self, limit=10):
        """The first `limit` messages and how many more there are."""
        lines = self.messages[:limit]
        if len(self.messages) > limit:
            lines.append(f"... and {len(self.messages) - limit} more")
        return "\n".join(lines)
