"""The ``hcgym`` command line: one module per subcommand, wired in :mod:`hcgym.scripts.cli`."""
