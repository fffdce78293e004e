"""A run's outputs to one page: `collect` streams the records into tallies, `figures` draws them
(matplotlib, Agg), `page` writes index.html beside the PNGs."""
