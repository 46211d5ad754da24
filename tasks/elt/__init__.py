"""ELT wing: Luigi classes (tasks.py), table specs (specs.py), stage/validate/publish steps
(steps.py) and data checks (checks.py). Imports the warehouse library and the base modules."""
