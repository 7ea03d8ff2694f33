"""Pipeline stages, one per module. `registry` maps config backend names to stage classes."""
