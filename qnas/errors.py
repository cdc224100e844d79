"""Errors that mean "the user asked for something we cannot do": the CLIs print them, no traceback."""


class UserInputError(ValueError):
    """Bad input from the user: the message says what is wrong and what is expected."""


class DataError(UserInputError):
    """A data set that cannot be found, read or used."""
