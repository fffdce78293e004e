"""pipeline.py's engine: `config` reads run.toml, `plan` turns it into stage commands in the seed's
folder layout, `runner` runs them as subprocesses (resume, skip, exit codes) or prints a dry run."""
