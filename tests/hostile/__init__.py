"""The hostile-input suites, organised by threat rather than by module (the README's reliability section points
here): ``test_data.py`` (readers: bombs, FIFOs, symlink loops, malicious pickles, corrupt files),
``test_config.py`` (YAML, ``--set``, every key's range), ``test_checkpoints_cli.py`` (checkpoints, output
directories, resume, the CLIs) and ``test_numerics.py`` (miners, losses, heads, evaluation numerics)."""
