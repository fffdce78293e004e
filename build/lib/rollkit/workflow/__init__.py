"""`rollkit pipeline`'s engine: `config` reads run.toml, `plan` turns it into stage commands in the seed's
folder layout (`python -m rollkit VERB`, flags checked against each verb's own parser), `runner` runs them
as subprocesses (resume, skip, exit codes) or prints a dry run."""
