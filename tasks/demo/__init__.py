"""Demo data only: the warehouse seed (seed.py) and the sample segment generator
(sample_segments.py). Imports the warehouse library and the base modules."""
