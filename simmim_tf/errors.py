"""The one exception type that the command line turns into a one-line error."""


class SimMIMInputError(ValueError):
    """Bad user input: a file, an image, a question or a path.

    The message names what is wrong and where; the command line prints it on
    one line (`error: ...`) instead of a traceback.
    """
