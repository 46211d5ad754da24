"""Campaign wing: Luigi classes (tasks.py), segment loading (segments/), and a send wired from config:
its section and problems (send_config.py), the provider registry (providers.py), its recipients
(recipients.py), the wiring (wiring.py) and what its result means (outcome.py). Imports the
channels and state libraries and the base modules."""
