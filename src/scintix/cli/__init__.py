"""The ``scintix`` command."""
