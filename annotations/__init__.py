"""The labeling web app: pool, accounts, queue, server, stats and export (issue 5)."""
