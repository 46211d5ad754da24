"""Campaign wing: Luigi classes (tasks.py), segment loading (segments.py) and the send wiring
from config (sends.py). Imports the channels library and the base modules."""
